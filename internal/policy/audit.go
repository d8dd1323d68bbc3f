package policy

import (
	"maps"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// ModeAnnotation set to ModeAudit puts a NetworkPolicy in audit mode: it is
// not enforced, and the connections it would deny that are allowed are
// logged ("would deny") instead. Removing the annotation enforces it.
const (
	ModeAnnotation = "kube-fence.io/mode"
	ModeAudit      = "audit"
)

// IsAudit reports whether np is in audit mode.
func IsAudit(np *networkingv1.NetworkPolicy) bool {
	return np != nil && np.Annotations[ModeAnnotation] == ModeAudit
}

// WithAuditEnforced returns s with every policy in audit mode turned into an
// enforced one (the annotation removed), sharing everything else, and
// whether there was any: the reference evaluator on it says what the
// policies in audit mode would deny.
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
	return &out, any
}
