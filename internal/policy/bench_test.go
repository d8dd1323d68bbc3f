package policy

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// BenchmarkCompile compiles the plan of one node (110 pods) of synthetic
// clusters of growing size. Besides time it reports the CPU time per compile
// (less disturbed than wall time on a shared machine) and the plan's shape,
// because the dataplane's work follows it: profiles, the largest Any set and
// port class (in ranges), and ranges in all sets together and in the
// distinct sets only.
func BenchmarkCompile(b *testing.B) {
	sizes := []synth.Config{
		{Pods: 1000, Policies: 100, Nodes: 10, Namespaces: 10, PodsOnNode: 110},
		{Pods: 10000, Policies: 1000, Nodes: 100, Namespaces: 100, PodsOnNode: 110},
		{Pods: 50000, Policies: 5000, Nodes: 500, Namespaces: 500, PodsOnNode: 110},
	}
	for _, cfg := range sizes {
		cfg.Seed = 1
		b.Run(fmt.Sprintf("pods=%d/policies=%d", cfg.Pods, cfg.Policies), func(b *testing.B) {
			// Only this cluster is live, as in an agent: the garbage
			// collector's work follows the heap.
			s := synth.Generate(cfg)
			runtime.GC()
			var pl *plan.Plan
			cpu := cpuTime()
			for b.Loop() {
				pl = Compile(s, synth.NodeName(0), Options{})
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			st := planStats(pl)
			b.ReportMetric(float64(len(pl.Profiles)), "profiles")
			b.ReportMetric(float64(st.maxAny), "max-any-ranges")
			b.ReportMetric(float64(st.maxClassRanges), "max-class-ranges")
			b.ReportMetric(float64(st.maxClasses), "max-port-classes")
			b.ReportMetric(float64(st.totalRanges), "total-ranges")
			b.ReportMetric(float64(st.distinctRanges), "distinct-ranges")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type stats struct {
	maxAny, maxClasses, maxClassRanges int
	totalRanges, distinctRanges        int
}

func planStats(pl *plan.Plan) stats {
	var st stats
	seen := map[string]bool{}
	count := func(s addrset.Set) {
		st.totalRanges += s.Len()
		if k := s.String(); !seen[k] {
			seen[k] = true
			st.distinctRanges += s.Len()
		}
	}
	for _, p := range pl.Profiles {
		st.maxAny = max(st.maxAny, p.Any.Len())
		st.maxClasses = max(st.maxClasses, len(p.Ports))
		count(p.Any)
		for _, c := range p.Ports {
			st.maxClassRanges = max(st.maxClassRanges, c.Peers.Len())
			count(c.Peers)
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
