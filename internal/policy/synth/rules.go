package synth

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podSelector mixes the shapes seen in real clusters: all pods of the
// namespace, one app, an app and a tier, and set-based expressions.
func (g *gen) podSelector() metav1.LabelSelector {
	switch r := g.rnd.IntN(10); {
	case r < 1:
		return metav1.LabelSelector{}
	case r < 6:
		return metav1.LabelSelector{MatchLabels: map[string]string{"app": g.app()}}
	case r < 8:
		return metav1.LabelSelector{MatchLabels: map[string]string{"app": g.app(), "tier": g.tier()}}
	default:
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{g.tier(), g.tier()}},
			{Key: "version", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"v1"}},
		}}
	}
}

func (g *gen) app() string  { return fmt.Sprintf("app-%d", g.rnd.IntN(apps)) }
func (g *gen) tier() string { return tiers[g.rnd.IntN(len(tiers))] }

func (g *gen) ingressRules() []networkingv1.NetworkPolicyIngressRule {
	out := make([]networkingv1.NetworkPolicyIngressRule, 1+g.rnd.IntN(3))
	for i := range out {
		out[i] = networkingv1.NetworkPolicyIngressRule{From: g.peers(), Ports: g.ports()}
	}
	return out
}

func (g *gen) egressRules() []networkingv1.NetworkPolicyEgressRule {
	out := make([]networkingv1.NetworkPolicyEgressRule, 1+g.rnd.IntN(3))
	for i := range out {
		out[i] = networkingv1.NetworkPolicyEgressRule{To: g.peers(), Ports: g.ports()}
	}
	if g.rnd.IntN(2) == 0 { // the usual DNS rule
		out = append(out, networkingv1.NetworkPolicyEgressRule{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "ns-0"}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, intstr.FromString("dns"), nil)},
		})
	}
	return out
}

// peers returns 0 to 3 peers; none means everyone.
func (g *gen) peers() []networkingv1.NetworkPolicyPeer {
	n := g.rnd.IntN(4)
	if n == 0 && g.rnd.IntN(2) == 0 {
		n = 1 // keep "from everyone" rarer than in a uniform draw
	}
	var out []networkingv1.NetworkPolicyPeer
	for range n {
		out = append(out, g.peer())
	}
	return out
}

// peer draws the peer shapes of real clusters: mostly pods of the policy's
// own namespace or of one named namespace, sometimes a group of namespaces
// or an app across the cluster (the broad peers that make big sets), and
// ipBlocks.
func (g *gen) peer() networkingv1.NetworkPolicyPeer {
	app := &metav1.LabelSelector{MatchLabels: map[string]string{"app": g.app()}}
	switch r := g.rnd.IntN(20); {
	case r < 9:
		return networkingv1.NetworkPolicyPeer{PodSelector: app}
	case r < 12:
		return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}
	case r < 14:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: g.namespaceByName()}
	case r < 15:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: g.namespaceByName(),
			PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{g.tier()}}}}}
	case r < 16:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"team": fmt.Sprintf("team-%d", g.rnd.IntN(teams)), "env": envs[g.rnd.IntN(len(envs))]}}}
	case r < 17:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: app}
	default:
		return networkingv1.NetworkPolicyPeer{IPBlock: g.ipBlock()}
	}
}

func (g *gen) namespaceByName() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{
		corev1.LabelMetadataName: fmt.Sprintf("ns-%d", g.rnd.IntN(g.cfg.Namespaces))}}
}

// ipBlock covers a few nodes' pod blocks, with a hole in the middle, in
// either family, or an external range.
func (g *gen) ipBlock() *networkingv1.IPBlock {
	node := g.rnd.IntN(g.cfg.Nodes)
	switch g.rnd.IntN(3) {
	case 0:
		b := g.block4(node)
		wide := netip.PrefixFrom(b.Addr(), max(b.Bits()-2, 8)).Masked()
		hole := netip.PrefixFrom(b.Addr(), min(b.Bits()+2, 32)).Masked()
		return &networkingv1.IPBlock{CIDR: wide.String(), Except: []string{hole.String()}}
	case 1:
		b := g.block6(node)
		wide := netip.PrefixFrom(b.Addr(), 56).Masked()
		hole := netip.PrefixFrom(b.Addr(), 120).Masked()
		return &networkingv1.IPBlock{CIDR: wide.String(), Except: []string{hole.String()}}
	default:
		return &networkingv1.IPBlock{CIDR: "203.0.113.0/24", Except: []string{"203.0.113.128/25"}}
	}
}

// ports returns 0 to 3 port entries; none means every port.
func (g *gen) ports() []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for range g.rnd.IntN(4) {
		switch r := g.rnd.IntN(9); r {
		case 0:
			out = append(out, port("", intstr.FromInt32(80), nil))
		case 1:
			out = append(out, port(corev1.ProtocolTCP, intstr.FromInt32(8080), nil))
		case 2:
			out = append(out, port("", intstr.FromString("http"), nil))
		case 3:
			out = append(out, port(corev1.ProtocolTCP, intstr.FromString("metrics"), nil))
		case 4:
			out = append(out, port(corev1.ProtocolUDP, intstr.FromInt32(53), nil))
		case 5:
			end := int32(32767)
			out = append(out, port(corev1.ProtocolTCP, intstr.FromInt32(30000), &end))
		case 6:
			out = append(out, port(corev1.ProtocolSCTP, intstr.FromString("sync"), nil))
		case 7:
			out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr(corev1.ProtocolUDP)})
		default:
			out = append(out, port(corev1.ProtocolUDP, intstr.FromString("dns"), nil))
		}
	}
	return out
}

func port(proto corev1.Protocol, p intstr.IntOrString, end *int32) networkingv1.NetworkPolicyPort {
	out := networkingv1.NetworkPolicyPort{Port: &p, EndPort: end}
	if proto != "" {
		out.Protocol = ptr(proto)
	}
	return out
}

func ptr[T any](v T) *T { return &v }
