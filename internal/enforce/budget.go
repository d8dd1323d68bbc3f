package enforce

import (
	"errors"
	"fmt"
	"github.com/kube-fence/kube-fence/internal/addrset"
	"slices"
	"strings"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// MaxPeerRanges bounds the address ranges a plan's profiles may put into
// the kernel's sets: about nine times the 112,000 elements of a 10,000-pod
// cluster's table (docs/benchmarks.md). The API server accepts a single
// NetworkPolicy whose one rule lists thousands of ports and thousands of
// ipBlocks; rendered as a port class per port, each with its own sets of
// the peers, that is millions of interval elements, and the kernel's
// allocations for such a transaction exhausted a 24 GiB machine's memory
// (docs/reliability.md). Above the budget the transaction is not sent: the
// last committed table stays in force and the error names the policies.
const MaxPeerRanges = 1_000_000

// ErrPlanTooLarge is wrapped by Apply's error when a plan exceeds the budget.
var ErrPlanTooLarge = errors.New("plan too large for the kernel")

// checkBudget returns an error naming the largest profiles when pl would
// need more than limit address ranges in its sets.
func checkBudget(pl *plan.Plan, limit int) error {
	type size struct {
		p      *plan.Profile
		ranges int
	}
	var sizes []size
	total := 0
	for _, p := range pl.Profiles {
		// As the renderer does: port classes with the same peers share
		// one set.
		n := p.Any.Len()
		peers := make([]addrset.Set, len(p.Ports))
		for i, c := range p.Ports {
			peers[i] = c.Peers
		}
		for i, first := range addrset.Distinct(peers) {
			if first == i {
				n += peers[i].Len()
			}
		}
		total += n
		sizes = append(sizes, size{p, n})
	}
	if total <= limit {
		return nil
	}
	slices.SortFunc(sizes, func(a, b size) int { return b.ranges - a.ranges })
	var worst []string
	for _, s := range sizes[:min(3, len(sizes))] {
		worst = append(worst, fmt.Sprintf("%s profile of %s: %d ranges in %d port classes",
			s.p.Direction, strings.Join(s.p.Policies, ", "), s.ranges, len(s.p.Ports)))
	}
	return fmt.Errorf("%w: %d address ranges in the profiles' sets, more than %d; the largest: %s",
		ErrPlanTooLarge, total, limit, strings.Join(worst, "; "))
}
