package policy

import (
	"maps"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// ModeAnnotation set to ModeAudit puts a NetworkPolicy or a
// ClusterNetworkPolicy in audit mode: it is not enforced, and the
// connections it would deny that are allowed are logged ("would deny")
// instead. Removing the annotation enforces it. (A ClusterNetworkPolicy
// carries it as cluster.ClusterNetworkPolicy.Audit.)
const (
	ModeAnnotation = cluster.ModeAnnotation
	ModeAudit      = cluster.ModeAudit
)

// IsAudit reports whether np is in audit mode.
func IsAudit(np *networkingv1.NetworkPolicy) bool {
	return np != nil && np.Annotations[ModeAnnotation] == ModeAudit
}

// WithAuditEnforced returns s with every policy in audit mode, NetworkPolicy
// or ClusterNetworkPolicy, turned into an enforced one (the annotation
// removed), sharing everything else, and whether there was any: the
// reference evaluator on it says what the policies in audit mode would deny.
func WithAuditEnforced(s *cluster.Snapshot) (*cluster.Snapshot, bool) {
	out := *s
	out.Policies = make([]*networkingv1.NetworkPolicy, len(s.Policies))
	any := false
	for i, np := range s.Policies {
		out.Policies[i] = np
		if IsAudit(np) {
			c := *np
			c.Annotations = maps.Clone(np.Annotations)
			delete(c.Annotations, ModeAnnotation)
			out.Policies[i] = &c
			any = true
		}
	}
	out.ClusterNetworkPolicies = make([]*cluster.ClusterNetworkPolicy, len(s.ClusterNetworkPolicies))
	for i, p := range s.ClusterNetworkPolicies {
		out.ClusterNetworkPolicies[i] = p
		if p != nil && p.Audit {
			c := *p
			c.Audit = false
			out.ClusterNetworkPolicies[i] = &c
			any = true
		}
	}
	return &out, any
}
