package cluster

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// ClusterNetworkPolicy is a policy.networking.k8s.io ClusterNetworkPolicy as
// far as policy is concerned. It mirrors the API's shape field for field
// (v1beta1 and v1alpha2 have the same schema), because a part that cannot be
// read must still be seen to fail closed: an empty peer, a protocol entry
// with two protocols, a CIDR that does not parse. Only metadata and status are
// left out.
type ClusterNetworkPolicy struct {
	Name     string
	Tier     CNPTier
	Priority int32 // 0 to 1000; lower is evaluated first within the tier
	Subject  CNPSubject
	Ingress  []CNPRule // peers are From; only Namespaces and Pods exist there
	Egress   []CNPRule // peers are To
	// Audit is the annotation ModeAnnotation set to ModeAudit: the policy
	// is not enforced, and what it would deny is only logged.
	Audit bool
}

// ModeAnnotation set to ModeAudit puts a NetworkPolicy or a
// ClusterNetworkPolicy in audit mode (see policy.IsAudit).
const (
	ModeAnnotation = "kube-fence.io/mode"
	ModeAudit      = "audit"
)

// CNPTier is spec.tier.
type CNPTier string

// The tiers a ClusterNetworkPolicy can sit in. NetworkPolicies form the tier
// between them.
const (
	TierAdmin    CNPTier = "Admin"
	TierBaseline CNPTier = "Baseline"
)

// CNPAction is a rule's action.
type CNPAction string

// The actions of a rule.
const (
	ActionAccept CNPAction = "Accept"
	ActionDeny   CNPAction = "Deny"
	ActionPass   CNPAction = "Pass"
)

// CNPSubject selects the pods a policy applies to; exactly one field is set
// in a valid policy.
type CNPSubject struct {
	Namespaces *metav1.LabelSelector
	Pods       *CNPPods
}

// CNPPods selects pods by the labels of their namespace and their own.
type CNPPods struct {
	NamespaceSelector metav1.LabelSelector
	PodSelector       metav1.LabelSelector
}

// CNPRule is one ingress or egress rule.
type CNPRule struct {
	Name      string
	Action    CNPAction
	Peers     []CNPPeer // spec.ingress[].from or spec.egress[].to
	Protocols []CNPProtocol
}

// CNPPeer is one entry of from or to; exactly one field is set in a valid
// policy. Nodes, Networks and DomainNames exist only in egress rules.
type CNPPeer struct {
	Namespaces  *metav1.LabelSelector
	Pods        *CNPPods
	Nodes       *metav1.LabelSelector
	Networks    []string // CIDRs as written
	DomainNames []string
}

// CNPProtocol is one entry of protocols; exactly one field is set in a valid
// policy.
type CNPProtocol struct {
	TCP                  *CNPPorts
	UDP                  *CNPPorts
	SCTP                 *CNPPorts
	DestinationNamedPort string
}

// CNPPorts is the match of one protocol. DestinationPort nil means every port
// of the protocol (the API documentation's reading of an omitted port).
type CNPPorts struct {
	DestinationPort *CNPPort
}

// CNPPort is a port number or a range; exactly one is set in a valid policy.
type CNPPort struct {
	Number int32
	Range  *CNPPortRange
}

// CNPPortRange is an inclusive range of ports.
type CNPPortRange struct {
	Start, End int32
}

// ClusterNetworkPolicyFromAPI converts a v1beta1 ClusterNetworkPolicy (a
// v1alpha2 object decodes into the same type: the schemas are identical). It
// never fails: what cannot be enforced is judged by the policy package.
func ClusterNetworkPolicyFromAPI(in *v1beta1.ClusterNetworkPolicy) *ClusterNetworkPolicy {
	out := &ClusterNetworkPolicy{
		Name:     in.Name,
		Tier:     CNPTier(in.Spec.Tier),
		Priority: in.Spec.Priority,
		Audit:    in.Annotations[ModeAnnotation] == ModeAudit,
		Subject: CNPSubject{
			Namespaces: in.Spec.Subject.Namespaces.DeepCopy(),
			Pods:       podsFromAPI(in.Spec.Subject.Pods),
		},
	}
	for _, r := range in.Spec.Ingress {
		rule := CNPRule{Name: r.Name, Action: CNPAction(r.Action), Protocols: protocolsFromAPI(r.Protocols)}
		for _, p := range r.From {
			rule.Peers = append(rule.Peers, CNPPeer{Namespaces: p.Namespaces.DeepCopy(), Pods: podsFromAPI(p.Pods)})
		}
		out.Ingress = append(out.Ingress, rule)
	}
	for _, r := range in.Spec.Egress {
		rule := CNPRule{Name: r.Name, Action: CNPAction(r.Action), Protocols: protocolsFromAPI(r.Protocols)}
		for _, p := range r.To {
			peer := CNPPeer{Namespaces: p.Namespaces.DeepCopy(), Pods: podsFromAPI(p.Pods), Nodes: p.Nodes.DeepCopy()}
			for _, n := range p.Networks {
				peer.Networks = append(peer.Networks, string(n))
			}
			for _, d := range p.DomainNames {
				peer.DomainNames = append(peer.DomainNames, string(d))
			}
			rule.Peers = append(rule.Peers, peer)
		}
		out.Egress = append(out.Egress, rule)
	}
	return out
}

func podsFromAPI(in *v1beta1.NamespacedPod) *CNPPods {
	if in == nil {
		return nil
	}
	return &CNPPods{NamespaceSelector: *in.NamespaceSelector.DeepCopy(), PodSelector: *in.PodSelector.DeepCopy()}
}

func protocolsFromAPI(in []v1beta1.ClusterNetworkPolicyProtocol) []CNPProtocol {
	var out []CNPProtocol
	for _, p := range in {
		c := CNPProtocol{DestinationNamedPort: p.DestinationNamedPort}
		if p.TCP != nil {
			c.TCP = portsFromAPI(p.TCP.DestinationPort)
		}
		if p.UDP != nil {
			c.UDP = portsFromAPI(p.UDP.DestinationPort)
		}
		if p.SCTP != nil {
			c.SCTP = portsFromAPI(p.SCTP.DestinationPort)
		}
		out = append(out, c)
	}
	return out
}

func portsFromAPI(in *v1beta1.Port) *CNPPorts {
	if in == nil {
		return &CNPPorts{}
	}
	p := &CNPPort{Number: in.Number}
	if in.Range != nil {
		p.Range = &CNPPortRange{Start: in.Range.Start, End: in.Range.End}
	}
	return &CNPPorts{DestinationPort: p}
}

// DeepCopy returns a copy sharing nothing with p.
func (p *ClusterNetworkPolicy) DeepCopy() *ClusterNetworkPolicy {
	if p == nil {
		return nil
	}
	out := *p
	out.Subject = CNPSubject{Namespaces: p.Subject.Namespaces.DeepCopy(), Pods: p.Subject.Pods.deepCopy()}
	out.Ingress = copyRules(p.Ingress)
	out.Egress = copyRules(p.Egress)
	return &out
}

func (p *CNPPods) deepCopy() *CNPPods {
	if p == nil {
		return nil
	}
	return &CNPPods{NamespaceSelector: *p.NamespaceSelector.DeepCopy(), PodSelector: *p.PodSelector.DeepCopy()}
}

func copyRules(in []CNPRule) []CNPRule {
	if in == nil {
		return nil
	}
	out := make([]CNPRule, len(in))
	for i, r := range in {
		out[i] = r
		out[i].Peers = nil
		for _, p := range r.Peers {
			out[i].Peers = append(out[i].Peers, CNPPeer{
				Namespaces: p.Namespaces.DeepCopy(), Pods: p.Pods.deepCopy(), Nodes: p.Nodes.DeepCopy(),
				Networks: slices.Clone(p.Networks), DomainNames: slices.Clone(p.DomainNames),
			})
		}
		out[i].Protocols = nil
		for _, c := range r.Protocols {
			out[i].Protocols = append(out[i].Protocols, CNPProtocol{
				TCP: c.TCP.deepCopy(), UDP: c.UDP.deepCopy(), SCTP: c.SCTP.deepCopy(),
				DestinationNamedPort: c.DestinationNamedPort,
			})
		}
	}
	return out
}

func (p *CNPPorts) deepCopy() *CNPPorts {
	if p == nil {
		return nil
	}
	out := &CNPPorts{}
	if p.DestinationPort != nil {
		dp := *p.DestinationPort
		if dp.Range != nil {
			r := *dp.Range
			dp.Range = &r
		}
		out.DestinationPort = &dp
	}
	return out
}
