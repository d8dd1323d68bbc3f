package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/plan/plantest"
)

func TestAttribute(t *testing.T) {
	a := netip.MustParseAddr
	pl := plantest.Small() // x/a isolated both ways (x/egress; x/allow x/deny), x/b open
	remote := map[netip.Addr]string{a("10.42.1.5"): "y/c", a("10.42.0.10"): "x/a"}
	byIP := func(ip netip.Addr) string { return remote[ip] }
	for _, tc := range []struct {
		name           string
		rec            droplog.Record
		src, dst       string
		policies       []string
		namespace      string
		withoutCluster bool
	}{
		{name: "egress of a local pod", rec: droplog.Record{Side: droplog.SideEgress, Src: a("10.42.0.10"), Dst: a("10.42.1.5")},
			src: "x/a", dst: "y/c", policies: []string{"x/egress"}, namespace: "x"},
		{name: "ingress of a local pod, IPv6, source unknown to the cluster", rec: droplog.Record{Side: droplog.SideIngress, Src: a("fd00::99"), Dst: a("fd00:10:42::10")},
			dst: "x/a", policies: []string{"x/allow", "x/deny"}, namespace: "x"},
		{name: "the plan names the local pod when the cluster view lacks it", rec: droplog.Record{Side: droplog.SideIngress, Src: a("10.42.1.5"), Dst: a("10.42.0.10")},
			src: "", dst: "x/a", policies: []string{"x/allow", "x/deny"}, namespace: "x", withoutCluster: true},
		{name: "unknown address", rec: droplog.Record{Side: droplog.SideUnknownAddress, Src: a("10.42.0.99"), Dst: a("10.42.1.5")},
			dst: "y/c"},
		{name: "a pod the plan no longer has", rec: droplog.Record{Side: droplog.SideEgress, Src: a("10.42.0.77"), Dst: a("10.42.1.5")},
			dst: "y/c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := byIP
			if tc.withoutCluster {
				f = nil
			}
			got := attribute(tc.rec, pl, f)
			if got.srcPod != tc.src || got.dstPod != tc.dst || got.namespace != tc.namespace || !slices.Equal(got.policies, tc.policies) {
				t.Errorf("attribute = %+v, want src %q dst %q policies %v namespace %q", got, tc.src, tc.dst, tc.policies, tc.namespace)
			}
		})
	}
}

// TestAttributeTierRule: when a ClusterNetworkPolicy rule denied, the line
// names it, found by evaluating the profile as the table does.
func TestAttributeTierRule(t *testing.T) {
	a := netip.MustParseAddr
	pl := plantest.Small()
	id := pl.LocalPod(a("10.42.0.10")).Ingress
	prof := *pl.Profile(id)
	prof.Admin = []*plan.TierRule{{Policy: "guard", Field: "spec.ingress[0]", Action: plan.Deny,
		Matches: []plan.TierMatch{{Peers: addrset.Of(netip.MustParsePrefix("10.42.1.0/24")),
			Ports: []plan.PortRange{{Protocol: plan.TCP, First: 80, Last: 80}}}}}}
	for i, p := range pl.Profiles {
		if p.ID == id {
			pl.Profiles[i] = &prof
		}
	}
	rec := droplog.Record{Side: droplog.SideIngress, Protocol: 6, Src: a("10.42.1.5"), Dst: a("10.42.0.10"), SrcPort: 40000, DstPort: 80}
	got := attribute(rec, pl, nil)
	if got.rule != "Deny guard spec.ingress[0]" || !slices.Equal(got.policies, []string{"guard"}) {
		t.Errorf("admin Deny: rule %q policies %v, want the guard rule", got.rule, got.policies)
	}
	rec.DstPort = 81 // not the rule's port: the NetworkPolicy part denied
	got = attribute(rec, pl, nil)
	if got.rule != "" || !slices.Equal(got.policies, []string{"x/allow", "x/deny"}) {
		t.Errorf("NetworkPolicy denial: rule %q policies %v, want no rule and the isolating policies", got.rule, got.policies)
	}
}

func TestDedupLogsEachAttemptOnce(t *testing.T) {
	var d dedup
	rec := droplog.Record{Side: droplog.SideIngress, Protocol: 6, Src: netip.MustParseAddr("10.42.0.1"), Dst: netip.MustParseAddr("10.42.0.2"), SrcPort: 40000, DstPort: 80}
	if !d.first(rec) {
		t.Fatal("the first SYN was not logged")
	}
	if d.first(rec) {
		t.Error("a retransmitted SYN was logged again")
	}
	rec.SrcPort++
	if !d.first(rec) {
		t.Error("a new attempt (another source port) was not logged")
	}
	d.last[flowKey{rec.Side, rec.Audit, rec.Protocol, rec.Src, rec.Dst, rec.SrcPort, rec.DstPort}] = time.Now().Add(-dedupWindow)
	if !d.first(rec) {
		t.Error("the same flow after the window was not logged")
	}
	for i := range dedupMax + 10 {
		rec.SrcPort = uint16(i)
		d.first(rec)
	}
	if len(d.last) > dedupMax {
		t.Errorf("dedup holds %d flows, more than its bound %d", len(d.last), dedupMax)
	}
}
