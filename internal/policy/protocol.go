package policy

import (
	"github.com/kube-fence/kube-fence/internal/plan"
	corev1 "k8s.io/api/core/v1"
)

// ProtocolFromAPI maps a Kubernetes protocol name; the empty name means TCP,
// as the API defaults it.
func ProtocolFromAPI(p corev1.Protocol) (plan.Protocol, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return plan.TCP, true
	case corev1.ProtocolUDP:
		return plan.UDP, true
	case corev1.ProtocolSCTP:
		return plan.SCTP, true
	}
	return 0, false
}
