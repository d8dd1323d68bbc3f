package nft

import (
	"fmt"
	"strings"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// TiersText returns, as nft comments (# lines, so the text stays valid
// input for nft -f), the tiers each pod of the plan meets in each direction
// when ClusterNetworkPolicies select it, in the order a packet meets them;
// "" when none does.
func TiersText(pl *plan.Plan) string {
	var b strings.Builder
	for _, pod := range pl.Pods {
		for _, side := range []struct {
			dir plan.Direction
			id  plan.ProfileID
		}{{plan.Ingress, pod.Ingress}, {plan.Egress, pod.Egress}} {
			p := pl.Profile(side.id)
			if p == nil || !p.Tiered() {
				continue
			}
			fmt.Fprintf(&b, "# %s %s (chain %s):\n", pod.Key(), side.dir, profileChain(side.dir, p.ID))
			for _, r := range p.Admin {
				fmt.Fprintf(&b, "#   admin    %s (priority %d) %s: %s\n", r.Policy, r.Priority, r.Field, r.Action)
			}
			if !p.NotIsolated {
				fmt.Fprintf(&b, "#   NetworkPolicy %s: what they allow, else drop\n", strings.Join(p.Policies, ", "))
				continue
			}
			for _, r := range p.Baseline {
				fmt.Fprintf(&b, "#   baseline %s (priority %d) %s: %s\n", r.Policy, r.Priority, r.Field, r.Action)
			}
			b.WriteString("#   default: allow\n")
		}
	}
	return b.String()
}
