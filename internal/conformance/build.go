package conformance

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Small builders for the policies of the cases, named after what they set.

// Policy returns a NetworkPolicy selecting pods of namespace ns with sel,
// changed by each option in turn.
func Policy(ns, name string, sel metav1.LabelSelector, opts ...func(*networkingv1.NetworkPolicySpec)) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel},
	}
	for _, o := range opts {
		o(&np.Spec)
	}
	return np
}

// Ingress makes the policy an ingress policy with these rules (none: deny
// all ingress).
func Ingress(rules ...networkingv1.NetworkPolicyIngressRule) func(*networkingv1.NetworkPolicySpec) {
	return func(s *networkingv1.NetworkPolicySpec) {
		s.PolicyTypes = addType(s.PolicyTypes, networkingv1.PolicyTypeIngress)
		s.Ingress = append(s.Ingress, rules...)
	}
}

// Egress makes the policy an egress policy with these rules (none: deny all
// egress).
func Egress(rules ...networkingv1.NetworkPolicyEgressRule) func(*networkingv1.NetworkPolicySpec) {
	return func(s *networkingv1.NetworkPolicySpec) {
		s.PolicyTypes = addType(s.PolicyTypes, networkingv1.PolicyTypeEgress)
		s.Egress = append(s.Egress, rules...)
	}
}

func addType(types []networkingv1.PolicyType, t networkingv1.PolicyType) []networkingv1.PolicyType {
	for _, have := range types {
		if have == t {
			return types
		}
	}
	return append(types, t)
}

// From is an ingress rule.
func From(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports}
}

// To is an egress rule.
func To(ports []networkingv1.NetworkPolicyPort, peers ...networkingv1.NetworkPolicyPeer) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports}
}

// Labels is a selector of matchLabels from key/value pairs; no pairs give
// the empty selector, which selects everything.
func Labels(kv ...string) metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return metav1.LabelSelector{MatchLabels: m}
}

// Expr is a selector of one matchExpressions requirement.
func Expr(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// PodPeer, NamespacePeer and PodNamespacePeer select pods by labels.
func PodPeer(sel metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &sel}
}

func NamespacePeer(sel metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &sel}
}

func PodNamespacePeer(pod, ns metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &pod, NamespaceSelector: &ns}
}

// BlockPeer is an ipBlock peer.
func BlockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

// Port is a numbered port entry; proto "" leaves the protocol out (TCP).
func Port(proto corev1.Protocol, port int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(port)
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto), Port: &p}
}

// PortRange is a numbered port entry with endPort.
func PortRange(proto corev1.Protocol, port, end int32) networkingv1.NetworkPolicyPort {
	p := Port(proto, port)
	p.EndPort = &end
	return p
}

// NamedPort is a named port entry.
func NamedPort(proto corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto), Port: &p}
}

// AnyPort is an entry with a protocol and no port: every port of it.
func AnyPort(proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto)}
}

// Ports lists port entries.
func Ports(p ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return p }

func protoPtr(p corev1.Protocol) *corev1.Protocol {
	if p == "" {
		return nil
	}
	return &p
}
