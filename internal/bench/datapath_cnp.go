package bench

import (
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// setupName names a datapath setup in logs and reports.
func setupName(r DatapathResult) string {
	if r.CNPs > 0 {
		return fmt.Sprintf("%d ClusterNetworkPolicies", r.CNPs)
	}
	return fmt.Sprintf("%d", r.Policies)
}

// datapathCNPs returns n admin ClusterNetworkPolicies that all select pair
// i's pods, half the client (egress rules), half the server (ingress
// rules), at distinct priorities. The first denies the denied port to
// everyone, which proves they are enforced; each other one accepts, on
// ports that mostly include the measured one, peers that are not the
// measured pods (a network of no pod for egress, a namespace of no pod for
// ingress), so the first packet of a measured connection is tested against
// every rule of every policy on both sides before it falls through to the
// default, allow: the worst case of the admin tier.
func datapathCNPs(n, pair int) []*cluster.ClusterNetworkPolicy {
	var out []*cluster.ClusterNetworkPolicy
	pods := func(app string) *cluster.CNPPods {
		return &cluster.CNPPods{NamespaceSelector: metav1.LabelSelector{},
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}
	}
	tcp := func(first, last int32) cluster.CNPProtocol {
		p := &cluster.CNPPort{Number: first}
		if last > first {
			p = &cluster.CNPPort{Range: &cluster.CNPPortRange{Start: first, End: last}}
		}
		return cluster.CNPProtocol{TCP: &cluster.CNPPorts{DestinationPort: p}}
	}
	client, server := fmt.Sprintf("client-%d", pair), fmt.Sprintf("server-%d", pair)
	ports := [][]cluster.CNPProtocol{
		{tcp(allowedPort, 0)},
		{tcp(allowedPort, 0), tcp(443, 0)},
		{tcp(allowedPort-10, allowedPort+10)},
		{tcp(9000, 9100)},
	}
	for i := range n {
		p := &cluster.ClusterNetworkPolicy{Name: fmt.Sprintf("pair-%d-cnp-%04d", pair, i), Tier: cluster.TierAdmin, Priority: int32(i % 1001)}
		switch {
		case i == 0:
			p.Subject.Pods = pods(server)
			p.Ingress = []cluster.CNPRule{{Action: cluster.ActionDeny, Peers: []cluster.CNPPeer{{Namespaces: &metav1.LabelSelector{}}},
				Protocols: []cluster.CNPProtocol{tcp(deniedPort, 0)}}}
		case i%2 == 0:
			p.Subject.Pods = pods(server)
			p.Ingress = []cluster.CNPRule{{Action: cluster.ActionAccept,
				Peers:     []cluster.CNPPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "nobody"}}}},
				Protocols: ports[i%len(ports)]}}
		default:
			v4 := netip.AddrFrom4([4]byte{172, byte(16 + i>>16&0xf), byte(i >> 8), byte(i)})
			p.Subject.Pods = pods(client)
			p.Egress = []cluster.CNPRule{{Action: cluster.ActionAccept,
				Peers:     []cluster.CNPPeer{{Networks: []string{netip.PrefixFrom(v4, 32).String(), "fd00:99::/32"}}},
				Protocols: ports[i%len(ports)]}}
		}
		out = append(out, p)
	}
	return out
}
