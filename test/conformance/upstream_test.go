package conformance

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/conformance"
)

// TestUpstream runs the upstream cases and kube-fence's extra change cases
// on one node and on two nodes (three layouts in long mode). Each step
// changes the lab through Lab.Update, probes the full matrix (every pair,
// TCP/UDP/SCTP on 80 and 81, IPv4 and IPv6) and compares every probe with
// the upstream truth table where the case states one, the reference
// evaluator elsewhere.
func TestUpstream(t *testing.T) {
	variants := []variant{oneNode, twoNodes}
	if *long {
		variants = append(variants, routed)
	}
	cases := append(conformance.Upstream(), conformance.Extra()...)
	for _, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			l, _ := startLab(t, v)
			r := conformance.NewRunner(l)
			start := time.Now()
			for i, c := range cases {
				t.Run(fmt.Sprintf("%s/%02d %s", c.Group, i+1, c.Name), func(t *testing.T) {
					runCase(t, r, v, c)
				})
			}
			t.Logf("%s: %d cases in %v", v.Name, len(cases), time.Since(start).Round(time.Millisecond))
		})
	}
}

func runCase(t *testing.T, r *conformance.Runner, v variant, c conformance.Case) {
	ctx := context.Background()
	if err := r.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	rec := caseResult{Variant: v.Name, Group: c.Group, Name: c.Name, V4: true, V6: true}
	defer func() { results.addCase(rec) }()
	start := time.Now()
	for i, st := range c.Steps {
		o, err := r.Step(ctx, st)
		if err != nil {
			rec.V4, rec.V6 = false, false
			t.Fatalf("step %d (%s): %v", i+1, st.Action, err)
		}
		rec.Probes += len(o.Verdicts)
		rec.Rechecked += o.Rechecked
		rec.V4 = rec.V4 && !o.Failed(corev1.IPv4Protocol)
		rec.V6 = rec.V6 && !o.Failed(corev1.IPv6Protocol)
		if o.Failed("") {
			y, _ := conformance.ScenarioYAML(o.Snap, fmt.Sprintf("%s %q, step %d: %s", c.Group, c.Name, i+1, st.Action))
			t.Errorf("step %d (%s): probes differ from expectations (%s)\n%s\nreplay with `kube-fence lab run -f FILE`:\n%s",
				i+1, st.Action, v.Name, o.Report(), y)
		}
	}
	rec.Duration = time.Since(start)
	t.Logf("%d steps, %d probes (%d probed again), %v", len(c.Steps), rec.Probes, rec.Rechecked, rec.Duration.Round(time.Millisecond))
}
