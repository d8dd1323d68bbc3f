// Package plantest holds small hand-written plans for the dataplane's
// tests.
package plantest

import (
	"net/netip"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Small is a small hand-written plan covering every table feature: an
// ingress profile with any-port peers, a class open to everyone and a class
// with peers; an egress profile; a pod open both ways; node addresses and
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
					{Protocol: plan.TCP, First: 8000, Last: 8080, Peers: addrset.Of(p("192.168.0.0/16"), p("10.0.0.0/8")).Subtract(addrset.Of(p("10.42.0.0/16")))},
					{Protocol: plan.SCTP, First: 0, Last: 65535, Peers: addrset.Of(p("fd00::/8"))},
				},
			},
		},
		NodeAddrs:          addrset.OfAddrs(a("192.168.100.1"), a("fd00:100::1")),
		PodCIDRs:           addrset.Of(p("10.42.0.0/24"), p("fd00:10:42::/64")),
		DefaultDenyUnknown: true,
	}
}
