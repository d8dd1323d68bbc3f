package policy

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// This file is the reference evaluator: the oracle the tests (and the lab's
// conformance checks) compare compiled plans and real packets with. It reads
// the NetworkPolicy API documentation literally, one question at a time,
// looping over every policy. It is slow on purpose and shares no code with
// the compiler except apimachinery's selector conversion, so a bug in one is
// unlikely to be repeated in the other.

// Endpoint is one end of a connection as the reference evaluator sees it.
type Endpoint struct {
	Pod *cluster.Pod // nil when the address is not a pod's
	IP  netip.Addr   // the address the connection uses
}

// Allowed reports whether NetworkPolicy lets a connection from one endpoint
// to the other through on proto and port: the source's egress (when it is
// isolated for egress) and the destination's ingress (when it is isolated for
// ingress) must both allow it. Traffic between a pod and an address of its
// own node is always allowed, and so is a pod talking to itself: that
// traffic never leaves the pod's network namespace. Explain says why.
func Allowed(s *cluster.Snapshot, from, to Endpoint, proto plan.Protocol, port uint16) bool {
	return Explain(s, from, to, proto, port).Allowed
}

// refSide judges one side of a connection: the egress of from's pod or the
// ingress of to's pod (self is that pod's endpoint, other the far end),
// walking every policy and rule and keeping the attribution.
func refSide(s *cluster.Snapshot, dir networkingv1.PolicyType, self, other, dst Endpoint, proto plan.Protocol, port uint16) SideVerdict {
	switch {
	case !refTakesPart(self.Pod):
		return SideVerdict{Allowed: true, Reason: ReasonOutsidePolicy}
	case refIsNodeAddress(s, self.Pod.NodeName, other.IP):
		return SideVerdict{Allowed: true, Reason: ReasonNodeAddress}
	}
	var v SideVerdict
	var misses []Miss
	for _, np := range s.Policies {
		if np == nil || IsAudit(np) || !refHasType(np, dir) || !refSelects(np, self.Pod) {
			continue // a policy in audit mode is not enforced (see WithAuditEnforced)
		}
		v.Policies = append(v.Policies, refKey(np))
		peers, ports := refRules(np, dir)
		for i := range peers {
			peerOK, portOK := refRuleMatches(s, np, peers[i], ports[i], other, dst.Pod, proto, port)
			rule := RuleRef{Policy: refKey(np), Direction: directionName(dir), Index: i}
			if peerOK && portOK {
				v.AllowedBy = append(v.AllowedBy, rule)
			} else {
				misses = append(misses, Miss{Rule: rule, PeerMatched: peerOK, PortMatched: portOK})
			}
		}
	}
	// Attribution reads the same whatever order the objects arrived in.
	slices.Sort(v.Policies)
	slices.SortFunc(v.AllowedBy, RuleRef.compare)
	slices.SortFunc(misses, func(a, b Miss) int { return a.Rule.compare(b.Rule) })
	v.Isolated = len(v.Policies) > 0
	v.Allowed = !v.Isolated || len(v.AllowedBy) > 0
	switch {
	case !v.Isolated:
		v.Reason = ReasonNotIsolated
	case !v.Allowed:
		v.NearestMiss = nearest(misses)
	}
	return v
}

// refRules lists a policy's rules of one direction as parallel peer and
// port lists.
func refRules(np *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) ([][]networkingv1.NetworkPolicyPeer, [][]networkingv1.NetworkPolicyPort) {
	var peers [][]networkingv1.NetworkPolicyPeer
	var ports [][]networkingv1.NetworkPolicyPort
	if dir == networkingv1.PolicyTypeIngress {
		for _, r := range np.Spec.Ingress {
			peers, ports = append(peers, r.From), append(ports, r.Ports)
		}
	} else {
		for _, r := range np.Spec.Egress {
			peers, ports = append(peers, r.To), append(ports, r.Ports)
		}
	}
	return peers, ports
}

// refRuleMatches: a rule allows when some peer matches (no peers: everyone)
// and some port matches (no ports: every port); both halves are returned so
// a denial can say which one missed. Named ports are looked up on the
// destination pod of the connection, whichever side the policy selects.
func refRuleMatches(s *cluster.Snapshot, np *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer,
	ports []networkingv1.NetworkPolicyPort, other Endpoint, dst *cluster.Pod, proto plan.Protocol, port uint16) (peerOK, portOK bool) {
	peerOK = len(peers) == 0
	for _, p := range peers {
		peerOK = peerOK || refPeerMatches(s, np, p, other)
	}
	portOK = len(ports) == 0
	for _, p := range ports {
		portOK = portOK || refPortMatches(p, dst, proto, port)
	}
	return peerOK, portOK
}

// refTakesPart: host-network pods, pods without address and finished pods
// are outside NetworkPolicy altogether.
func refTakesPart(p *cluster.Pod) bool {
	return p != nil && p.Enforceable()
}

func refIsNodeAddress(s *cluster.Snapshot, node string, ip netip.Addr) bool {
	for _, n := range s.Nodes {
		if n == nil || n.Name != node {
			continue
		}
		for _, a := range n.Addresses {
			if a == ip {
				return true
			}
		}
	}
	return false
}

func refNamespaceOf(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// refHasType: with policyTypes empty (or holding nothing valid), a policy is
// an ingress policy, and an egress policy too when it has egress rules.
func refHasType(np *networkingv1.NetworkPolicy, want networkingv1.PolicyType) bool {
	found, anyValid := false, false
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress || t == networkingv1.PolicyTypeEgress {
			anyValid = true
			found = found || t == want
		}
	}
	if anyValid {
		return found
	}
	return want == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
}

func refSelects(np *networkingv1.NetworkPolicy, pod *cluster.Pod) bool {
	if refNamespaceOf(np.Namespace) != refNamespaceOf(pod.Namespace) {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	return err == nil && sel.Matches(pod.Labels)
}

// refPeerMatches: an ipBlock matches addresses (pod or not); selectors match
// pods that take part in NetworkPolicy, in the policy's namespace unless a
// namespaceSelector says otherwise.
func refPeerMatches(s *cluster.Snapshot, np *networkingv1.NetworkPolicy, p networkingv1.NetworkPolicyPeer, ep Endpoint) bool {
	if p.IPBlock != nil {
		return p.PodSelector == nil && p.NamespaceSelector == nil && refInIPBlock(p.IPBlock, ep.IP)
	}
	if p.PodSelector == nil && p.NamespaceSelector == nil {
		return false
	}
	pod := ep.Pod
	if !refTakesPart(pod) {
		return false
	}
	if p.NamespaceSelector == nil {
		if refNamespaceOf(pod.Namespace) != refNamespaceOf(np.Namespace) {
			return false
		}
	} else {
		sel, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
		if err != nil || !sel.Matches(refNamespaceLabels(s, refNamespaceOf(pod.Namespace))) {
			return false
		}
	}
	if p.PodSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
		if err != nil || !sel.Matches(pod.Labels) {
			return false
		}
	}
	return true
}

// refNamespaceLabels: the Namespace object's labels, always carrying
// kubernetes.io/metadata.name; that label alone when there is no object.
func refNamespaceLabels(s *cluster.Snapshot, name string) labels.Set {
	out := labels.Set{corev1.LabelMetadataName: name}
	for _, ns := range s.Namespaces {
		if ns != nil && ns.Name == name {
			for k, v := range ns.Labels {
				if k != corev1.LabelMetadataName {
					out[k] = v
				}
			}
			break
		}
	}
	return out
}

// refInIPBlock: inside cidr and inside no except. A block with a part that
// cannot be read matches nothing.
func refInIPBlock(b *networkingv1.IPBlock, ip netip.Addr) bool {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || cidr.Addr().Is4In6() {
		return false
	}
	inside := cidr.Masked().Contains(ip)
	for _, e := range b.Except {
		ex, err := netip.ParsePrefix(e)
		if err != nil || ex.Addr().Is4In6() {
			return false
		}
		if ex.Masked().Contains(ip) {
			inside = false
		}
	}
	return inside
}

// refPortMatches checks one NetworkPolicyPort; an entry the API server
// would refuse matches nothing.
func refPortMatches(p networkingv1.NetworkPolicyPort, dst *cluster.Pod, proto plan.Protocol, port uint16) bool {
	want := "TCP"
	if p.Protocol != nil {
		want = string(*p.Protocol)
	}
	if refProtocolNumber(want) != proto || proto == 0 {
		return false
	}
	if p.Port == nil {
		return p.EndPort == nil
	}
	switch p.Port.Type {
	case intstr.Int:
		lo, hi := p.Port.IntVal, p.Port.IntVal
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if lo < 1 || hi > 65535 || hi < lo {
			return false
		}
		return lo <= int32(port) && int32(port) <= hi
	case intstr.String:
		if p.EndPort != nil || len(validation.IsValidPortName(p.Port.StrVal)) > 0 || !refTakesPart(dst) {
			return false
		}
		for _, cp := range dst.Ports {
			cpProto := string(cp.Protocol)
			if cpProto == "" {
				cpProto = "TCP"
			}
			if cp.Name == p.Port.StrVal && refProtocolNumber(cpProto) == proto && cp.Port >= 1 && cp.Port == int32(port) {
				return true
			}
		}
	}
	return false
}

func refProtocolNumber(name string) plan.Protocol {
	switch name {
	case "TCP":
		return 6
	case "UDP":
		return 17
	case "SCTP":
		return 132
	}
	return 0
}
