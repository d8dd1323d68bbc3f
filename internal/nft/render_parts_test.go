package nft

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/plan/plantest"
)

// TestRenderSharesPeerSets: a peer's sets are in the table once however
// many profiles use it, are the same Set values from render to render while
// their addresses are (so Diff skips them), leave the table with the last
// profile using them, and a union of more than maxParts peers is one pair
// of the profile's own sets.
func TestRenderSharesPeerSets(t *testing.T) {
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	shared := plan.PeerSet{Key: "0000000000aa", Addrs: addrset.Of(p("10.1.0.0/16"), p("fd00:1::/64"))}
	own := plan.PeerSet{Key: "0000000000bb", Addrs: addrset.OfAddrs(a("10.2.0.1"))}
	var many []plan.PeerSet
	var manyUnion addrset.Set
	for i := range maxParts + 1 {
		ps := plan.PeerSet{Key: fmt.Sprintf("%012x", 0x100+i), Addrs: addrset.OfAddrs(netip.AddrFrom4([4]byte{10, 3, 0, byte(2 * i)}))}
		many = append(many, ps)
		manyUnion = manyUnion.Union(ps.Addrs)
	}
	in1 := &plan.Profile{ID: "i1", Direction: plan.Ingress, Any: shared.Addrs, AnyParts: []plan.PeerSet{shared}}
	in2 := &plan.Profile{ID: "i2", Direction: plan.Ingress, Ports: []plan.PortClass{
		{Protocol: plan.TCP, First: 80, Last: 80, Peers: shared.Addrs.Union(own.Addrs), Parts: []plan.PeerSet{shared, own}},
		{Protocol: plan.TCP, First: 443, Last: 443, Peers: manyUnion, Parts: many},
	}}
	pods := []plan.LocalPod{
		{Namespace: "x", Name: "a", IPs: []netip.Addr{a("10.42.0.1")}, Ingress: "i1"},
		{Namespace: "x", Name: "b", IPs: []netip.Addr{a("10.42.0.2")}, Ingress: "i2"},
	}
	var r Renderer
	t1 := r.Render(&plan.Plan{Pods: pods, Profiles: []*plan.Profile{in1, in2}})
	for name, want := range map[string]int{
		"peer-0000000000aa-v4": 1, "peer-0000000000aa-v6": 1, "peer-0000000000bb-v4-h": 1,
		"ingress-i2-tcp-443-v4-h": maxParts + 1, "peer-000000000100-v4": -1,
	} {
		s := t1.Sets[name]
		switch {
		case want < 0 && s != nil:
			t.Errorf("set %s is in the table: a union of %d peers should be the profile's own set", name, maxParts+1)
		case want >= 0 && s == nil:
			t.Errorf("set %s is missing", name)
		case want >= 0 && s.Len() != want:
			t.Errorf("set %s has %d elements, want %d", name, s.Len(), want)
		}
	}
	if got := len(t1.Chains["ingress-i2-tcp-80"].Rules); got != 4 {
		t.Errorf("chain ingress-i2-tcp-80 has %d rules, want a rule per peer and family with addresses, and the deny", got)
	}

	// A new profile using the shared peer adds rules and no elements.
	in3 := &plan.Profile{ID: "i3", Direction: plan.Ingress, Any: shared.Addrs, AnyParts: []plan.PeerSet{shared}}
	pods3 := append(pods, plan.LocalPod{Namespace: "x", Name: "c", IPs: []netip.Addr{a("10.42.0.3")}, Ingress: "i3"})
	t2 := r.Render(&plan.Plan{Pods: pods3, Profiles: []*plan.Profile{in1, in2, in3}})
	if t2.Sets["peer-0000000000aa-v4"] != t1.Sets["peer-0000000000aa-v4"] {
		t.Error("the shared set is a new value though its addresses are the same")
	}
	d := Diff(t2, t1)
	if added, deleted := d.Elements(); added != 2 || deleted != 0 { // x/c in the two pod maps
		t.Errorf("adding a profile of a known peer adds %d and deletes %d elements, want 2 and 0: %v", added, deleted, d.Differences)
	}

	// The shared sets stay while a profile uses them, and go with the last.
	t3 := r.Render(&plan.Plan{Pods: pods3[2:], Profiles: []*plan.Profile{in3}})
	if t3.Sets["peer-0000000000aa-v4"] == nil || t3.Sets["peer-0000000000bb-v4-h"] != nil {
		t.Errorf("after i1 and i2 went: shared set kept %v, i2's own peer kept %v",
			t3.Sets["peer-0000000000aa-v4"] != nil, t3.Sets["peer-0000000000bb-v4-h"] != nil)
	}
	t4 := r.Render(&plan.Plan{})
	for name := range t4.Sets {
		if len(name) > len(peerSetsPrefix) && name[:len(peerSetsPrefix)] == peerSetsPrefix {
			t.Errorf("set %s outlived every profile using it", name)
		}
	}
}

// TestFixedSetsHoldThePlan: the fixed sets (the node's addresses, the pod
// CIDRs) hold what the plan says whatever the profiles' rules refer to
// them: a tiered egress profile returns for the node's addresses, and
// writing that rule once re-added node-addrs with every address, which
// opened every pod to everyone (caught by the mixed conformance cases).
func TestFixedSetsHoldThePlan(t *testing.T) {
	pl := plantest.Tiered()
	pl.NodeAddrs = addrset.OfAddrs(netip.MustParseAddr("192.168.100.1"), netip.MustParseAddr("fd00::1"))
	if !pl.DefaultDenyUnknown {
		t.Fatal("the plan must deny unknown addresses, so the pod CIDR sets are not empty")
	}
	tab := Render(pl)
	for name, want := range map[string][]addrset.Range{
		setNodeAddrs4: pl.NodeAddrs.V4(), setNodeAddrs6: pl.NodeAddrs.V6(),
		setPodCIDRs4: pl.PodCIDRs.V4(), setPodCIDRs6: pl.PodCIDRs.V6(),
	} {
		s := tab.Sets[name]
		if s == nil {
			t.Fatalf("set %s is missing", name)
		}
		if !sameRanges(s.Ranges, want) {
			t.Errorf("set %s holds %v, want %v", name, s.Ranges, want)
		}
	}
}
