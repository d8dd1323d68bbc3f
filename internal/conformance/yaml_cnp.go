package conformance

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// cnpToAPI writes a ClusterNetworkPolicy back as the API object, for the
// replayable scenarios of failed cases.
func cnpToAPI(p *cluster.ClusterNetworkPolicy) *v1beta1.ClusterNetworkPolicy {
	out := &v1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "ClusterNetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name},
		Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier: v1beta1.Tier(p.Tier), Priority: p.Priority,
			Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: p.Subject.Namespaces.DeepCopy(), Pods: podsToAPI(p.Subject.Pods)},
		},
	}
	if p.Audit {
		out.Annotations = map[string]string{cluster.ModeAnnotation: cluster.ModeAudit}
	}
	for _, r := range p.Ingress {
		in := v1beta1.ClusterNetworkPolicyIngressRule{Name: r.Name, Action: v1beta1.ClusterNetworkPolicyRuleAction(r.Action),
			Protocols: protocolsToAPI(r.Protocols)}
		for _, peer := range r.Peers {
			in.From = append(in.From, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: peer.Namespaces.DeepCopy(), Pods: podsToAPI(peer.Pods)})
		}
		out.Spec.Ingress = append(out.Spec.Ingress, in)
	}
	for _, r := range p.Egress {
		eg := v1beta1.ClusterNetworkPolicyEgressRule{Name: r.Name, Action: v1beta1.ClusterNetworkPolicyRuleAction(r.Action),
			Protocols: protocolsToAPI(r.Protocols)}
		for _, peer := range r.Peers {
			ap := v1beta1.ClusterNetworkPolicyEgressPeer{Namespaces: peer.Namespaces.DeepCopy(), Pods: podsToAPI(peer.Pods), Nodes: peer.Nodes.DeepCopy()}
			for _, n := range peer.Networks {
				ap.Networks = append(ap.Networks, v1beta1.CIDR(n))
			}
			for _, d := range peer.DomainNames {
				ap.DomainNames = append(ap.DomainNames, v1beta1.DomainName(d))
			}
			eg.To = append(eg.To, ap)
		}
		out.Spec.Egress = append(out.Spec.Egress, eg)
	}
	return out
}

func podsToAPI(p *cluster.CNPPods) *v1beta1.NamespacedPod {
	if p == nil {
		return nil
	}
	return &v1beta1.NamespacedPod{NamespaceSelector: *p.NamespaceSelector.DeepCopy(), PodSelector: *p.PodSelector.DeepCopy()}
}

func protocolsToAPI(ps []cluster.CNPProtocol) []v1beta1.ClusterNetworkPolicyProtocol {
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for _, p := range ps {
		a := v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: p.DestinationNamedPort}
		if p.TCP != nil {
			a.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: portToAPI(p.TCP)}
		}
		if p.UDP != nil {
			a.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: portToAPI(p.UDP)}
		}
		if p.SCTP != nil {
			a.SCTP = &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: portToAPI(p.SCTP)}
		}
		out = append(out, a)
	}
	return out
}

func portToAPI(p *cluster.CNPPorts) *v1beta1.Port {
	if p.DestinationPort == nil {
		return nil
	}
	out := &v1beta1.Port{Number: p.DestinationPort.Number}
	if r := p.DestinationPort.Range; r != nil {
		out.Range = &v1beta1.PortRange{Start: r.Start, End: r.End}
	}
	return out
}
