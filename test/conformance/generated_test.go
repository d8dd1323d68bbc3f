package conformance

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/conformance"
)

// TestGenerated runs generated cases on one lab per layout, swapping
// policies with Lab.Update, and checks every probe against the reference
// evaluator. The fast mode runs a fixed sample covering every dimension
// value on one node; -conformance.long runs every case on every layout.
func TestGenerated(t *testing.T) {
	variants := []variant{oneNode}
	if *long {
		variants = []variant{oneNode, twoNodes, routed}
	}
	for _, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			l, base := startLab(t, v)
			r := conformance.NewRunner(l)
			cases := conformance.Generate(*seed, base, *count)
			mode := "long"
			if !*long {
				mode = "fast"
				var picked []conformance.Generated
				for _, i := range conformance.Sample(cases, *sample) {
					picked = append(picked, cases[i])
				}
				cases = picked
			}
			if m := conformance.Missing(cases); len(m) > 0 {
				t.Errorf("the cases miss dimension values %v", m)
			}
			run := runCases(t, r, cases, genRun{Variant: v.Name, Mode: mode})
			t.Logf("%s, %s mode: %d cases, %d steps, %d probes (%d probed again), %d mismatching cases, %v",
				v.Name, mode, run.Cases, run.Steps, run.Probes, run.Recheck, run.Failed, run.Duration.Round(time.Millisecond))
			t.Logf("cases per dimension value: %s", tagSummary(run.Tags))
		})
	}
}

// runCases runs the generated cases in turn and counts what they did into
// run, which it returns after adding it to the results.
func runCases(t *testing.T, r *conformance.Runner, cases []conformance.Generated, run genRun) genRun {
	t.Helper()
	run.Tags = map[string]int{}
	start := time.Now()
	for _, c := range cases {
		run.Cases++
		for _, tag := range c.Tags {
			run.Tags[tag]++
		}
		steps, probes, again, ok := runGenerated(t, r, c)
		run.Steps += steps
		run.Recheck += again
		run.Probes += probes
		if !ok {
			run.Failed++
		}
	}
	run.Duration = time.Since(start)
	results.addGen(run)
	return run
}

func runGenerated(t *testing.T, r *conformance.Runner, c conformance.Generated) (steps, probes, again int, ok bool) {
	t.Helper()
	ctx := context.Background()
	if err := r.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	ok = true
	for i, st := range c.Steps() {
		o, err := r.Step(ctx, st)
		if err != nil {
			t.Fatalf("%s step %d (%s): %v", c.Name(), i+1, st.Action, err)
		}
		steps++
		probes += len(o.Verdicts)
		again += o.Rechecked
		if o.Rechecked > 0 {
			t.Logf("%s step %d: probed again %v", c.Name(), i+1, o.RecheckedBy)
		}
		if o.Failed("") {
			ok = false
			y, _ := conformance.ScenarioYAML(o.Snap, fmt.Sprintf("%s step %d: %s\ntags: %s", c.Name(), i+1, st.Action, strings.Join(c.Tags, " ")))
			t.Errorf("%s step %d (%s): the lab disagrees with the reference evaluator\n%s\nreplay with `kube-fence lab run -f FILE`:\n%s",
				c.Name(), i+1, st.Action, o.Report(), y)
		}
	}
	return steps, probes, again, ok
}

func tagSummary(tags map[string]int) string {
	var parts []string
	for dim, values := range conformance.Dimensions {
		var vs []string
		for _, v := range values {
			vs = append(vs, fmt.Sprintf("%s:%d", v, tags[dim+"="+v]))
		}
		parts = append(parts, dim+" {"+strings.Join(vs, " ")+"}")
	}
	return strings.Join(parts, "; ")
}
