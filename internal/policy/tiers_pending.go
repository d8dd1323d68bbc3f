package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// ErrClusterNetworkPolicyNotEnforced says a snapshot holds
// ClusterNetworkPolicies, which the compiler does not read yet.
var ErrClusterNetworkPolicyNotEnforced = errors.New("ClusterNetworkPolicy is not enforced yet")

// RequireEnforceable refuses a snapshot holding ClusterNetworkPolicies,
// wrapping ErrClusterNetworkPolicyNotEnforced. Callers about to enforce
// (the lab, render) ask it first, so that nothing is half-applied: the
// NetworkPolicies alone would allow what an admin tier denies, and deny what
// it accepts. It goes away when the compiler gains the tiers.
func RequireEnforceable(s *cluster.Snapshot) error {
	var names []string
	for _, p := range s.ClusterNetworkPolicies {
		if p != nil {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: kube-fence would enforce the NetworkPolicies without the admin and baseline tiers; remove the ClusterNetworkPolicies (%s) to run the rest",
		ErrClusterNetworkPolicyNotEnforced, strings.Join(names, ", "))
}
