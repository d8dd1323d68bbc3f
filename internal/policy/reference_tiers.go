package policy

import (
	"fmt"
	"net/netip"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// This file extends the reference evaluator with the tiers of the
// network-policy-api: admin ClusterNetworkPolicies, then NetworkPolicies
// (the reference evaluator of reference.go), then baseline
// ClusterNetworkPolicies, then the default, allow. It is written from the
// API's documentation (network-policy-api v0.3.0, apis/v1beta1), one question
// at a time, looping over every policy and sorting on every call. It shares
// no code with the compiler.

// DecidedBy names what decided one direction of a connection.
type DecidedBy string

// What can decide a direction.
const (
	BySelf          DecidedBy = "Self"          // a pod reaching its own address: no policy applies
	ByAdmin         DecidedBy = "Admin"         // an admin ClusterNetworkPolicy rule, Accept or Deny
	ByNetworkPolicy DecidedBy = "NetworkPolicy" // the pod is isolated by NetworkPolicy in that direction
	ByBaseline      DecidedBy = "Baseline"      // a baseline ClusterNetworkPolicy rule, Accept or Deny
	ByDefault       DecidedBy = "Default"       // no tier decided, or the end is no pod policies apply to: allowed
)

// CNPRuleRef names one ClusterNetworkPolicy rule and what it did.
type CNPRuleRef struct {
	Policy   string // metadata.name
	Tier     cluster.CNPTier
	Priority int32
	Field    string // spec.ingress[i] or spec.egress[i]
	Name     string // the rule's own name, often empty
	Action   cluster.CNPAction
	// FailClosed says why the rule could not be read (field and reason);
	// such a rule with Deny or Pass (or an unknown action) denies
	// everything, and Action is then Deny. With Accept it matches nothing
	// and never decides.
	FailClosed string
}

func (r CNPRuleRef) String() string {
	s := fmt.Sprintf("%s ClusterNetworkPolicy %s (priority %d) %s", r.Tier, r.Policy, r.Priority, r.Field)
	if r.Name != "" {
		s += fmt.Sprintf(" %q", r.Name)
	}
	s += ": " + string(r.Action)
	if r.FailClosed != "" {
		s += " (fail closed: " + r.FailClosed + ")"
	}
	return s
}

// Decision is how one direction of a connection was decided: the source
// pod's egress or the destination pod's ingress.
type Decision struct {
	Allowed bool
	By      DecidedBy
	Rule    *CNPRuleRef  // the rule that decided, when By is ByAdmin or ByBaseline
	Passed  []CNPRuleRef // Pass rules that handed the connection to the next tier, in order
}

// Verdict is the reference evaluator's answer over all tiers.
type Verdict struct {
	Allowed bool     // both directions allow
	Egress  Decision // at the source
	Ingress Decision // at the destination
}

// Decide decides a connection over the tiers: for the source's egress and,
// independently, the destination's ingress, admin ClusterNetworkPolicies
// (by priority, lower first; equal priorities by name), then NetworkPolicy,
// then baseline ClusterNetworkPolicies, then allow. Within a policy the first
// rule that matches decides. Accept and Deny end the evaluation of that
// direction; Pass skips the rest of the tier. A pod reaching its own address
// is never subject to policy.
//
// The NetworkPolicy tier decides exactly when Allowed's NetworkPolicy
// evaluation would isolate the pod in that direction, with Allowed's answer
// (so traffic between a pod and its own node stays allowed there). The
// ClusterNetworkPolicy tiers have no such exception: nodes and networks
// peers match node addresses like any other.
func Decide(s *cluster.Snapshot, from, to Endpoint, proto plan.Protocol, port uint16) Verdict {
	if from.Pod != nil && from.Pod == to.Pod {
		self := Decision{Allowed: true, By: BySelf}
		return Verdict{Allowed: true, Egress: self, Ingress: self}
	}
	eg := refDecideDirection(s, true, from, to, proto, port)
	in := refDecideDirection(s, false, from, to, proto, port)
	return Verdict{Allowed: eg.Allowed && in.Allowed, Egress: eg, Ingress: in}
}

func refDecideDirection(s *cluster.Snapshot, egress bool, from, to Endpoint, proto plan.Protocol, port uint16) Decision {
	subject, peer := to.Pod, from
	if egress {
		subject, peer = from.Pod, to
	}
	if !refTakesPart(subject) {
		return Decision{Allowed: true, By: ByDefault}
	}
	var d Decision
	if r, ok := refTierFirstMatch(s, cluster.TierAdmin, egress, subject, peer, to.Pod, proto, port); ok {
		if r.Action != cluster.ActionPass {
			return Decision{Allowed: r.Action == cluster.ActionAccept, By: ByAdmin, Rule: &r}
		}
		d.Passed = append(d.Passed, r)
	}
	if refNetworkPolicyIsolates(s, subject, egress) {
		d.By = ByNetworkPolicy
		if egress {
			d.Allowed = refSide(s, networkingv1.PolicyTypeEgress, from, to, to, proto, port).Allowed
		} else {
			d.Allowed = refSide(s, networkingv1.PolicyTypeIngress, to, from, to, proto, port).Allowed
		}
		return d
	}
	if r, ok := refTierFirstMatch(s, cluster.TierBaseline, egress, subject, peer, to.Pod, proto, port); ok {
		if r.Action != cluster.ActionPass {
			d.Allowed, d.By, d.Rule = r.Action == cluster.ActionAccept, ByBaseline, &r
			return d
		}
		d.Passed = append(d.Passed, r)
	}
	d.Allowed, d.By = true, ByDefault
	return d
}

// refNetworkPolicyIsolates: some NetworkPolicy of that direction selects the
// pod, so the NetworkPolicy tier makes the final decision.
func refNetworkPolicyIsolates(s *cluster.Snapshot, pod *cluster.Pod, egress bool) bool {
	t := networkingv1.PolicyTypeIngress
	if egress {
		t = networkingv1.PolicyTypeEgress
	}
	for _, np := range s.Policies {
		if np != nil && !IsAudit(np) && refHasType(np, t) && refSelects(np, pod) {
			return true
		}
	}
	return false
}

// refTierFirstMatch walks the tier's policies selecting the subject, by
// priority then name, and each policy's rules of the direction in order, and
// returns the first rule that matches the connection.
func refTierFirstMatch(s *cluster.Snapshot, tier cluster.CNPTier, egress bool, subject *cluster.Pod, peer Endpoint,
	dst *cluster.Pod, proto plan.Protocol, port uint16) (CNPRuleRef, bool) {
	var pols []*cluster.ClusterNetworkPolicy
	for _, p := range s.ClusterNetworkPolicies {
		if p != nil && !p.Audit && p.Tier == tier && refCNPSelectsSubject(s, p.Subject, subject) {
			pols = append(pols, p)
		}
	}
	sort.SliceStable(pols, func(i, j int) bool {
		if pols[i].Priority != pols[j].Priority {
			return pols[i].Priority < pols[j].Priority
		}
		return pols[i].Name < pols[j].Name
	})
	for _, p := range pols {
		rules, field := p.Ingress, "spec.ingress"
		if egress {
			rules, field = p.Egress, "spec.egress"
		}
		for i, r := range rules {
			ref := CNPRuleRef{Policy: p.Name, Tier: p.Tier, Priority: p.Priority, Field: fmt.Sprintf("%s[%d]", field, i),
				Name: r.Name, Action: r.Action}
			if problem := refCNPRuleProblem(r, egress, ref.Field); problem != "" {
				if r.Action == cluster.ActionAccept {
					continue // fail closed: an Accept rule that cannot be read matches nothing
				}
				ref.Action, ref.FailClosed = cluster.ActionDeny, problem
				return ref, true // fail closed: any other rule that cannot be read denies everything
			}
			if refCNPPeersMatch(s, r.Peers, peer) && refCNPProtocolsMatch(r.Protocols, dst, proto, port) {
				return ref, true
			}
		}
	}
	return CNPRuleRef{}, false
}

// refCNPSelectsSubject: exactly one of namespaces and pods, matching a pod
// that takes part in policy (host-network pods never do). A subject that
// cannot be read selects nobody.
func refCNPSelectsSubject(s *cluster.Snapshot, subj cluster.CNPSubject, pod *cluster.Pod) bool {
	if !refTakesPart(pod) || (subj.Namespaces == nil) == (subj.Pods == nil) {
		return false
	}
	return refCNPSelectsPod(s, subj.Namespaces, subj.Pods, pod)
}

func refCNPSelectsPod(s *cluster.Snapshot, namespaces *metav1.LabelSelector, pods *cluster.CNPPods, pod *cluster.Pod) bool {
	if !refTakesPart(pod) {
		return false
	}
	nsLabels := refNamespaceLabels(s, refNamespaceOf(pod.Namespace))
	if namespaces != nil {
		return refLabelsMatch(namespaces, nsLabels)
	}
	return pods != nil && refLabelsMatch(&pods.NamespaceSelector, nsLabels) && refLabelsMatch(&pods.PodSelector, pod.Labels)
}

func refLabelsMatch(sel *metav1.LabelSelector, l labels.Set) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(l)
}

// refCNPRuleProblem returns what makes a rule unreadable, or "". Everything
// the CRD's schema and CEL rules refuse counts, and so does domainNames,
// which kube-fence does not enforce.
func refCNPRuleProblem(r cluster.CNPRule, egress bool, field string) string {
	switch r.Action {
	case cluster.ActionAccept, cluster.ActionDeny, cluster.ActionPass:
	default:
		return fmt.Sprintf("%s.action: %q is not Accept, Deny or Pass", field, r.Action)
	}
	peersField := field + ".from"
	if egress {
		peersField = field + ".to"
	}
	if len(r.Peers) == 0 {
		return peersField + ": no peers"
	}
	addressPeers := false
	for j, p := range r.Peers {
		if problem := refCNPPeerProblem(p, egress); problem != "" {
			return fmt.Sprintf("%s[%d]%s", peersField, j, problem)
		}
		addressPeers = addressPeers || p.Nodes != nil || p.Networks != nil
	}
	for i, c := range r.Protocols {
		if problem := refCNPProtocolProblem(c); problem != "" {
			return fmt.Sprintf("%s.protocols[%d]%s", field, i, problem)
		}
		if c.DestinationNamedPort != "" && addressPeers {
			return fmt.Sprintf("%s.protocols[%d].destinationNamedPort: not allowed with nodes or networks peers", field, i)
		}
	}
	return ""
}

func refCNPPeerProblem(p cluster.CNPPeer, egress bool) string {
	set := 0
	for _, isSet := range []bool{p.Namespaces != nil, p.Pods != nil, p.Nodes != nil, p.Networks != nil, p.DomainNames != nil} {
		if isSet {
			set++
		}
	}
	switch {
	case set == 0:
		return ": empty peer (a field this version of kube-fence does not know?)"
	case set > 1:
		return ": more than one kind of peer"
	case p.DomainNames != nil:
		return ".domainNames: not enforced by kube-fence"
	case !egress && (p.Nodes != nil || p.Networks != nil):
		return ": nodes and networks are egress peers only"
	case p.Networks != nil && len(p.Networks) == 0:
		return ".networks: empty"
	}
	for _, sel := range []*metav1.LabelSelector{p.Namespaces, p.Nodes} {
		if _, err := metav1.LabelSelectorAsSelector(sel); sel != nil && err != nil {
			return ": invalid selector: " + err.Error()
		}
	}
	if p.Pods != nil {
		for _, sel := range []*metav1.LabelSelector{&p.Pods.NamespaceSelector, &p.Pods.PodSelector} {
			if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
				return ".pods: invalid selector: " + err.Error()
			}
		}
	}
	for k, n := range p.Networks {
		if pfx, err := netip.ParsePrefix(n); err != nil || pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			return fmt.Sprintf(".networks[%d]: %q is not a CIDR", k, n)
		}
	}
	return ""
}

func refCNPProtocolProblem(c cluster.CNPProtocol) string {
	set := 0
	var ports *cluster.CNPPorts
	for _, p := range []*cluster.CNPPorts{c.TCP, c.UDP, c.SCTP} {
		if p != nil {
			set, ports = set+1, p
		}
	}
	if c.DestinationNamedPort != "" {
		set++
	}
	if set != 1 {
		return ": must name exactly one of tcp, udp, sctp, destinationNamedPort"
	}
	if ports == nil || ports.DestinationPort == nil {
		return ""
	}
	dp := ports.DestinationPort
	okPort := func(n int32) bool { return n >= 1 && n <= 65535 }
	switch {
	case dp.Range == nil && !okPort(dp.Number):
		return ".destinationPort: no number between 1 and 65535 and no range"
	case dp.Range != nil && dp.Number != 0:
		return ".destinationPort: both number and range"
	case dp.Range != nil && !(okPort(dp.Range.Start) && okPort(dp.Range.End) && dp.Range.Start < dp.Range.End):
		return ".destinationPort.range: must be start < end, both between 1 and 65535"
	}
	return ""
}

// refCNPPeersMatch: some peer matches the other end of the connection.
// Namespaces and pods peers match pods that take part in policy; nodes peers
// match the addresses of the selected Node objects; networks match addresses,
// pods' included.
func refCNPPeersMatch(s *cluster.Snapshot, peers []cluster.CNPPeer, ep Endpoint) bool {
	for _, p := range peers {
		switch {
		case p.Namespaces != nil || p.Pods != nil:
			if ep.Pod != nil && refCNPSelectsPod(s, p.Namespaces, p.Pods, ep.Pod) {
				return true
			}
		case p.Nodes != nil:
			for _, n := range s.Nodes {
				if n != nil && refLabelsMatch(p.Nodes, n.Labels) && refAddrIn(n.Addresses, ep.IP) {
					return true
				}
			}
		default:
			for _, cidr := range p.Networks {
				if pfx, err := netip.ParsePrefix(cidr); err == nil && pfx.Masked().Contains(ep.IP) {
					return true
				}
			}
		}
	}
	return false
}

func refAddrIn(addrs []netip.Addr, ip netip.Addr) bool {
	for _, a := range addrs {
		if a == ip {
			return true
		}
	}
	return false
}

// refCNPProtocolsMatch: no protocols match everything (any protocol, ICMP
// included); otherwise some entry must. A named port is looked up on the
// destination pod: a container port of that name, whose own protocol and
// number are the connection's.
func refCNPProtocolsMatch(protocols []cluster.CNPProtocol, dst *cluster.Pod, proto plan.Protocol, port uint16) bool {
	if len(protocols) == 0 {
		return true
	}
	for _, c := range protocols {
		switch {
		case c.TCP != nil:
			if proto == refProtocolNumber("TCP") && refCNPPortIn(c.TCP, port) {
				return true
			}
		case c.UDP != nil:
			if proto == refProtocolNumber("UDP") && refCNPPortIn(c.UDP, port) {
				return true
			}
		case c.SCTP != nil:
			if proto == refProtocolNumber("SCTP") && refCNPPortIn(c.SCTP, port) {
				return true
			}
		default:
			if !refTakesPart(dst) {
				continue
			}
			for _, cp := range dst.Ports {
				cpProto := string(cp.Protocol)
				if cpProto == "" {
					cpProto = "TCP"
				}
				if cp.Name == c.DestinationNamedPort && refProtocolNumber(cpProto) == proto && cp.Port == int32(port) {
					return true
				}
			}
		}
	}
	return false
}

func refCNPPortIn(p *cluster.CNPPorts, port uint16) bool {
	dp := p.DestinationPort
	switch {
	case dp == nil:
		return true
	case dp.Range != nil:
		return dp.Range.Start <= int32(port) && int32(port) <= dp.Range.End
	}
	return dp.Number == int32(port)
}
