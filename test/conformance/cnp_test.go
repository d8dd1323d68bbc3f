package conformance

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/conformance"
)

// TestCNPUpstream runs the 30 ClusterNetworkPolicy cases of the
// network-policy-api v0.3.0 conformance suite (both tiers, standard and
// experimental) with real packets, on one node and on two, in IPv4 and
// IPv6: the upstream model (the houses, host-network centaurs on the
// nodes), each case's manifest applied and its subtests' patches made
// through Lab.Update, each upstream probe sent in both families and
// compared with upstream's expectation. Each subtest is named after the
// upstream test.
func TestCNPUpstream(t *testing.T) {
	for _, v := range []variant{oneNode, twoNodes} {
		t.Run(v.Name, func(t *testing.T) {
			base, err := conformance.HousesModel(v.Nodes)
			if err != nil {
				t.Fatal(err)
			}
			l := startLabWith(t, v, base)
			base = l.Snapshot()
			start := time.Now()
			probes, failed := 0, 0
			for _, c := range conformance.CNPUpstream() {
				t.Run(c.Name, func(t *testing.T) {
					caseStart := time.Now()
					vs, err := conformance.RunCNPCase(context.Background(), l, base, c)
					if err != nil {
						t.Fatal(err)
					}
					fams := map[corev1.IPFamily]int{}
					for _, v := range vs {
						fams[v.Family]++
						probes++
						if !v.OK() {
							failed++
						}
					}
					if fams[corev1.IPv4Protocol] == 0 || fams[corev1.IPv4Protocol] != fams[corev1.IPv6Protocol] {
						t.Errorf("probes per family %v: want both, equally", fams)
					}
					if f := conformance.CNPFailures(vs); f != "" {
						t.Errorf("packets differ from upstream's expectations (%s):\n%s", v.Name, f)
					}
					results.addCase(caseResult{Variant: v.Name, Group: "ClusterNetworkPolicy", Name: c.Name,
						V4:     conformance.CNPFailures(only(vs, corev1.IPv4Protocol)) == "",
						V6:     conformance.CNPFailures(only(vs, corev1.IPv6Protocol)) == "",
						Probes: len(vs), Duration: time.Since(caseStart)})
				})
			}
			t.Logf("%s: 30 cases, %d probes, %d wrong, %v", v.Name, probes, failed, time.Since(start).Round(time.Millisecond))
			if probes != 2*397 {
				t.Errorf("%d probes, want %d (397 upstream probes in two families)", probes, 2*397)
			}
		})
	}
}

func only(vs []conformance.CNPVerdict, f corev1.IPFamily) []conformance.CNPVerdict {
	var out []conformance.CNPVerdict
	for _, v := range vs {
		if v.Family == f {
			out = append(out, v)
		}
	}
	return out
}
