package policy

import (
	"cmp"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Why a side allows a connection without any rule deciding it.
const (
	// ReasonSamePod: the connection stays inside one pod's network namespace.
	ReasonSamePod = "same pod"
	// ReasonOutsidePolicy: this end is no pod that takes part in
	// NetworkPolicy (an address outside the cluster's pods, a host-network
	// pod, a pod without address or one that has finished).
	ReasonOutsidePolicy = "not a pod under NetworkPolicy"
	// ReasonNodeAddress: the far end is an address of the pod's own node,
	// which Kubernetes requires to be allowed (probes, node agents).
	ReasonNodeAddress = "the other end is the pod's node"
	// ReasonNotIsolated: no policy selects the pod for this direction.
	ReasonNotIsolated = "not isolated"
)

// Explanation is the reference evaluator's answer for one connection, with
// the attribution `kube-fence explain` prints: the connection is allowed when
// both the source's egress and the destination's ingress allow it.
type Explanation struct {
	Allowed bool
	Egress  SideVerdict // the source pod's egress
	Ingress SideVerdict // the destination pod's ingress
}

// SideVerdict is how one side judged the connection.
type SideVerdict struct {
	Allowed bool
	// Isolated: some policy selects the pod for this direction.
	Isolated bool
	// Reason says why the side allows without a rule (one of the Reason
	// constants); empty when the isolating policies' rules decided.
	Reason string
	// Policies are the policies isolating the pod for this direction
	// ("namespace/name", sorted).
	Policies []string
	// AllowedBy are the rules that allow the connection, in policy order.
	AllowedBy []RuleRef
	// NearestMiss is, for a denied connection, the rule that came closest:
	// the first whose peers or ports matched, else the first rule; nil when
	// the isolating policies have no rule for this direction.
	NearestMiss *Miss
}

// RuleRef names one rule of one policy: "x/allow-web ingress[1]".
type RuleRef struct {
	Policy    string // namespace/name
	Direction string // ingress or egress
	Index     int    // the rule's index in spec.ingress or spec.egress
}

func (r RuleRef) compare(o RuleRef) int {
	return cmp.Or(cmp.Compare(r.Policy, o.Policy), cmp.Compare(r.Direction, o.Direction), cmp.Compare(r.Index, o.Index))
}

func (r RuleRef) String() string { return fmt.Sprintf("%s %s[%d]", r.Policy, r.Direction, r.Index) }

// Miss is a rule that did not allow a connection, and which half of it did
// not match.
type Miss struct {
	Rule        RuleRef
	PeerMatched bool
	PortMatched bool
}

// Explain judges a connection as Allowed does and says why, side by side.
func Explain(s *cluster.Snapshot, from, to Endpoint, proto plan.Protocol, port uint16) Explanation {
	if from.Pod != nil && from.Pod == to.Pod {
		same := SideVerdict{Allowed: true, Reason: ReasonSamePod}
		return Explanation{Allowed: true, Egress: same, Ingress: same}
	}
	e := Explanation{
		Egress:  refSide(s, networkingv1.PolicyTypeEgress, from, to, to, proto, port),
		Ingress: refSide(s, networkingv1.PolicyTypeIngress, to, from, to, proto, port),
	}
	e.Allowed = e.Egress.Allowed && e.Ingress.Allowed
	return e
}

// nearest picks the miss that came closest to allowing.
func nearest(misses []Miss) *Miss {
	if len(misses) == 0 {
		return nil
	}
	for _, m := range misses {
		if m.PeerMatched || m.PortMatched {
			return &m
		}
	}
	return &misses[0]
}

func refKey(np *networkingv1.NetworkPolicy) string {
	return refNamespaceOf(np.Namespace) + "/" + np.Name
}

func directionName(dir networkingv1.PolicyType) string {
	if dir == networkingv1.PolicyTypeIngress {
		return "ingress"
	}
	return "egress"
}
