package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/conformance"
)

// TestGeneratedMixed runs generated cases mixing ClusterNetworkPolicies of
// both tiers (distinct priorities, Accept, Deny, Pass) with NetworkPolicies
// on one lab per layout, and checks every probe of the full matrix against
// the reference evaluator (policy.Decide through explain). The fast mode
// runs a fixed sample covering every mixed dimension value on one node;
// -conformance.long runs every case on one node and on two.
func TestGeneratedMixed(t *testing.T) {
	variants := []variant{oneNode}
	if *long {
		variants = []variant{oneNode, twoNodes}
	}
	for _, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			l, base := startLab(t, v)
			r := conformance.NewRunner(l)
			cases := conformance.GenerateMixed(*seed, base, *mixed)
			mode := "long"
			if !*long {
				mode = "fast"
				var picked []conformance.Generated
				for _, i := range sampleMixed(cases, *mixedSample) {
					picked = append(picked, cases[i])
				}
				cases = picked
			}
			if *onlyFlag != "" {
				cases = onlyCases(cases, *onlyFlag)
			} else if m := conformance.MissingIn(cases, conformance.MixedDimensions); len(m) > 0 {
				t.Errorf("the cases miss dimension values %v", m)
			}
			run := runCases(t, r, cases, genRun{Variant: v.Name + " (mixed tiers)", Mode: mode})
			t.Logf("%s, %s mode: %d mixed cases, %d steps, %d probes (%d probed again), %d mismatching cases, %v",
				v.Name, mode, run.Cases, run.Steps, run.Probes, run.Recheck, run.Failed, run.Duration.Round(time.Millisecond))
			t.Logf("cases per mixed dimension value: %s", mixedSummary(run.Tags))
		})
	}
}

// sampleMixed picks, greedily, the cases that add a mixed dimension value
// not yet covered, then the first ones up to size.
func sampleMixed(cases []conformance.Generated, size int) []int {
	covered, picked := map[string]bool{}, map[int]bool{}
	isMixed := func(tag string) bool {
		dim, _, _ := strings.Cut(tag, "=")
		_, ok := conformance.MixedDimensions[dim]
		return ok
	}
	for {
		best, gain := -1, 0
		for i, c := range cases {
			n := 0
			for _, tag := range c.Tags {
				if isMixed(tag) && !covered[tag] {
					n++
				}
			}
			if !picked[i] && n > gain {
				best, gain = i, n
			}
		}
		if best < 0 {
			break
		}
		picked[best] = true
		for _, tag := range cases[best].Tags {
			covered[tag] = true
		}
	}
	for i := 0; i < len(cases) && len(picked) < size; i++ {
		picked[i] = true
	}
	var out []int
	for i := range cases {
		if picked[i] {
			out = append(out, i)
		}
	}
	return out
}

func mixedSummary(tags map[string]int) string {
	var parts []string
	for dim, values := range conformance.MixedDimensions {
		var vs []string
		for _, v := range values {
			vs = append(vs, fmt.Sprintf("%s:%d", v, tags[dim+"="+v]))
		}
		parts = append(parts, dim+" {"+strings.Join(vs, " ")+"}")
	}
	return strings.Join(parts, "; ")
}

// onlyCases keeps the cases named in the comma-separated list.
func onlyCases(cases []conformance.Generated, names string) []conformance.Generated {
	want := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []conformance.Generated
	for _, c := range cases {
		if want[c.Name()] {
			out = append(out, c)
		}
	}
	return out
}
