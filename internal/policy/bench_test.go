package policy

import (
	"fmt"
	"testing"

	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// BenchmarkCompile compiles the plan of the busiest node of synthetic
// clusters of growing size. It reports the plan's shape too, because the
// dataplane's cost follows it.
func BenchmarkCompile(b *testing.B) {
	sizes := []synth.Config{
		{Pods: 1000, Policies: 100, Nodes: 10, Namespaces: 10, PodsOnNode: 110},
		{Pods: 10000, Policies: 1000, Nodes: 100, Namespaces: 100, PodsOnNode: 110},
		{Pods: 50000, Policies: 5000, Nodes: 500, Namespaces: 500, PodsOnNode: 110},
	}
	for _, cfg := range sizes {
		cfg.Seed = 1
		s := synth.Generate(cfg)
		b.Run(fmt.Sprintf("pods=%d/policies=%d", cfg.Pods, cfg.Policies), func(b *testing.B) {
			var pl *Plan
			for b.Loop() {
				pl = Compile(s, synth.NodeName(0), Options{})
			}
			st := planStats(pl)
			b.ReportMetric(float64(len(pl.Profiles)), "profiles")
			b.ReportMetric(float64(st.maxAny), "max-any-ranges")
			b.ReportMetric(float64(st.maxClasses), "max-port-classes")
			b.ReportMetric(float64(st.maxClassRanges), "max-class-ranges")
			b.ReportMetric(float64(st.totalRanges), "total-ranges")
		})
	}
}

type stats struct{ maxAny, maxClasses, maxClassRanges, totalRanges int }

func planStats(pl *Plan) stats {
	var st stats
	for _, p := range pl.Profiles {
		st.maxAny = max(st.maxAny, p.Any.Len())
		st.maxClasses = max(st.maxClasses, len(p.Ports))
		st.totalRanges += p.Any.Len()
		for _, c := range p.Ports {
			st.maxClassRanges = max(st.maxClassRanges, c.Peers.Len())
			st.totalRanges += c.Peers.Len()
		}
	}
	return st
}

// TestSynthPoliciesAreValid keeps the benchmark honest: every generated
// policy is one the API server would accept, and compiles without problems.
func TestSynthPoliciesAreValid(t *testing.T) {
	s := synth.Generate(synth.Config{Pods: 2000, Policies: 300, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 3})
	for _, np := range s.Policies {
		if errs := Validate(np); len(errs) > 0 {
			t.Fatalf("%s/%s: %v", np.Namespace, np.Name, errs)
		}
	}
	pl := Compile(s, synth.NodeName(0), Options{})
	if len(pl.Problems) > 0 {
		t.Errorf("problems: %v", pl.Problems)
	}
	if len(pl.Pods) == 0 || len(pl.Profiles) == 0 {
		t.Errorf("node 0 has %d pods and %d profiles", len(pl.Pods), len(pl.Profiles))
	}
}
