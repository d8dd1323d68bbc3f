package policy

import networkingv1 "k8s.io/api/networking/v1"

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
