// Package plantest holds small hand-written plans for the dataplane's
// tests.
package plantest

import (
	"net/netip"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Small is a small hand-written plan covering every table feature: an
// ingress profile with any-port peers (as one union), a class open to
// everyone, a class with peers as shared parts and one as a union; an egress
// profile; a pod open both ways; node addresses and
// default deny of unknown pod addresses.
func Small() *plan.Plan {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	all := addrset.All()
	return &plan.Plan{
		Node: "n1",
		Pods: []plan.LocalPod{
			{Namespace: "x", Name: "a", IPs: []netip.Addr{a("10.42.0.10"), a("fd00:10:42::10")}, Ingress: "i000000000001", Egress: "e000000000002"},
			{Namespace: "x", Name: "b", IPs: []netip.Addr{a("10.42.0.11"), a("fd00:10:42::11")}},
		},
		Profiles: []*plan.Profile{
			{
				ID: "e000000000002", Direction: plan.Egress, Policies: []string{"x/egress"},
				Ports: []plan.PortClass{
					{Protocol: plan.UDP, First: 53, Last: 53, Peers: all},
				},
			},
			{
				ID: "i000000000001", Direction: plan.Ingress, Policies: []string{"x/allow", "x/deny"},
				Any: addrset.Of(p("10.42.0.11/32"), p("fd00:10:42::11/128")),
				Ports: []plan.PortClass{
					{Protocol: plan.TCP, First: 80, Last: 80, Peers: all},
					{Protocol: plan.TCP, First: 8000, Last: 8080, Peers: addrset.Of(p("192.168.0.0/16"), p("10.0.0.0/8")).Subtract(addrset.Of(p("10.42.0.0/16"))),
						Parts: []plan.PeerSet{
							{Key: "00000000000a", Addrs: addrset.Of(p("10.0.0.0/8")).Subtract(addrset.Of(p("10.42.0.0/16")))},
							{Key: "00000000000b", Addrs: addrset.Of(p("192.168.0.0/16"))},
						}},
					{Protocol: plan.SCTP, First: 0, Last: 65535, Peers: addrset.Of(p("fd00::/8"))},
				},
			},
		},
		NodeAddrs:          addrset.OfAddrs(a("192.168.100.1"), a("fd00:100::1")),
		PodCIDRs:           addrset.Of(p("10.42.0.0/24"), p("fd00:10:42::/64")),
		DefaultDenyUnknown: true,
	}
}

// Tiered is Small with ClusterNetworkPolicy rules: pod a's egress profile
// gains admin rules of every action (one with ports, one with an egress
// named port resolved to a peer), its ingress an admin Pass and an ingress
// named port resolved against the pod; pod b, isolated by no
// NetworkPolicy, gets a profile of baseline rules.
func Tiered() *plan.Plan {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	pl := Small()
	b := addrset.Of(p("10.42.0.11/32"), p("fd00:10:42::11/128"))
	nodes := addrset.Of(p("192.168.100.0/24"))
	web := []plan.PortRange{{Protocol: plan.TCP, First: 80, Last: 80}}
	eg, in := pl.Profile("e000000000002"), pl.Profile("i000000000001")
	eg.Admin = []*plan.TierRule{
		{ID: "0123456789-e0", Policy: "deny-nodes", Priority: 1, Field: "spec.egress[0]", Action: plan.Deny,
			Matches: []plan.TierMatch{{Key: "0123456789-e0", Peers: nodes, Ports: []plan.PortRange{
				{Protocol: plan.TCP, First: 22, Last: 22}, {Protocol: plan.UDP, First: 1000, Last: 2000}}}}},
		{ID: "abcdefabcd-e1", Policy: "web", Priority: 2, Field: "spec.egress[1]", Action: plan.Accept,
			Matches: []plan.TierMatch{{Key: "abcdefabcd-e1-tcp-80", Peers: b, Ports: web}}},
		{ID: "abcdefabcd-e2", Policy: "web", Priority: 2, Field: "spec.egress[2]", Action: plan.Pass,
			Matches: []plan.TierMatch{{Key: "abcdefabcd-e2", Peers: addrset.All()}}},
	}
	in.Admin = []*plan.TierRule{
		{ID: "abcdefabcd-i0", Policy: "web", Priority: 2, Field: "spec.ingress[0]", Action: plan.Accept,
			Matches: []plan.TierMatch{{Key: "abcdefabcd-i0", Peers: b, Ports: web, Local: true}}},
	}
	pl.Pods[1].Egress = "e000000000003"
	pl.Profiles = append(pl.Profiles, &plan.Profile{ID: "e000000000003", Direction: plan.Egress, NotIsolated: true,
		Baseline: []*plan.TierRule{
			{ID: "fedcbafedc-e0", Policy: "baseline", Field: "spec.egress[0]", Action: plan.Deny,
				Matches: []plan.TierMatch{{Key: "fedcbafedc-e0", Peers: addrset.OfAddrs(a("10.42.0.10"), a("192.168.100.1"))}}},
		}})
	return pl
}
