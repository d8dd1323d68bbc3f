package plan

import (
	"net/netip"
	"testing"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// TestProfileDecide pins the order of the tiers in a profile: admin rules
// first (Accept and Deny decide, Pass hands on), then the NetworkPolicy part
// (which allows the node), or, when no NetworkPolicy isolates, the
// baseline rules (Pass allows) and the default allow.
func TestProfileDecide(t *testing.T) {
	a := netip.MustParseAddr
	peer, other, node := a("10.0.0.1"), a("10.0.0.2"), a("192.168.0.1")
	only := func(ip netip.Addr) addrset.Set { return addrset.OfAddrs(ip) }
	rule := func(action Action, peers addrset.Set, ports ...PortRange) *TierRule {
		return &TierRule{ID: "r", Action: action, Matches: []TierMatch{{Key: "r", Peers: peers, Ports: ports}}}
	}
	tcp80 := PortRange{Protocol: TCP, First: 80, Last: 80}
	np := Profile{Any: only(other)} // NetworkPolicy allows other only
	cases := []struct {
		name string
		p    Profile
		peer netip.Addr
		port uint16
		node bool
		want bool
	}{
		{"admin Deny decides before NetworkPolicy", withAdmin(np, rule(Deny, only(other))), other, 80, false, false},
		{"admin Accept decides before NetworkPolicy", withAdmin(np, rule(Accept, only(peer))), peer, 80, false, true},
		{"admin Pass hands to NetworkPolicy", withAdmin(np, rule(Pass, only(peer)), rule(Accept, only(peer))), peer, 80, false, false},
		{"the first matching rule decides", withAdmin(np, rule(Accept, only(peer), tcp80), rule(Deny, only(peer))), peer, 80, false, true},
		{"a rule's ports must match", withAdmin(np, rule(Accept, only(peer), tcp80), rule(Deny, only(peer))), peer, 81, false, false},
		{"NetworkPolicy allows the node", withAdmin(np), node, 80, true, true},
		{"admin may deny the node", withAdmin(np, rule(Deny, only(node))), node, 80, true, false},
		{"baseline Deny where no NetworkPolicy isolates", Profile{NotIsolated: true, Baseline: []*TierRule{rule(Deny, only(peer))}}, peer, 80, false, false},
		{"baseline Pass allows", Profile{NotIsolated: true, Baseline: []*TierRule{rule(Pass, only(peer)), rule(Deny, only(peer))}}, peer, 80, false, true},
		{"default allow", Profile{NotIsolated: true, Baseline: []*TierRule{rule(Deny, only(other))}}, peer, 80, false, true},
		{"admin Pass to the baseline", Profile{NotIsolated: true, Admin: []*TierRule{rule(Pass, only(peer))}, Baseline: []*TierRule{rule(Deny, only(peer))}}, peer, 80, false, false},
	}
	for _, tc := range cases {
		if got, _ := tc.p.Decide(tc.peer, TCP, tc.port, tc.node); got != tc.want {
			t.Errorf("%s: Decide = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func withAdmin(p Profile, rules ...*TierRule) Profile {
	p.Admin = rules
	return p
}
