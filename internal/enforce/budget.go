package enforce

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// MaxPeerRanges bounds the address ranges a plan's profiles may put into
// the kernel's sets: about nine times the 112,000 elements of a 10,000-pod
// cluster's table (docs/benchmarks.md). The API server accepts a single
// NetworkPolicy whose rules need millions of interval elements (rules of
// distinct peers over overlapping port ranges: a set per port class), and
// the kernel's allocations for such a transaction exhausted a 24 GiB
// machine's memory (docs/reliability.md). Above the budget, the largest
// profiles lose their allows (withinBudget), so the rest of the plan is
// still enforced.
const MaxPeerRanges = 1_000_000

// withinBudget returns pl, or, when its profiles need more than limit
// address ranges in their sets, a copy in which the largest profiles, taken
// in turn until the rest fits, allow nothing: their pods stay isolated in
// that direction (fail closed, as a policy part that cannot be compiled),
// and each policy behind them gets a Problem saying why. Attributing by
// profile and not by policy keeps this a pure function of the plan: a
// profile is the union of its policies, and which of them to blame would
// need the compiler again; the largest profiles are where the hostile
// policies are. pl itself is never modified: the compiler keeps it.
func withinBudget(pl *plan.Plan, limit int, sized *rangeCache) *plan.Plan {
	costs := make([]nft.ProfileCost, len(pl.Profiles))
	sizes := make([]int, len(pl.Profiles)) // each profile's ranges as if alone
	var in nft.Ranges
	for i, p := range pl.Profiles {
		costs[i] = sized.cost(p)
		sizes[i] = costs[i].Alone()
		in.Add(costs[i])
	}
	sized.done()
	if in.Total <= limit {
		return pl
	}
	order := make([]int, len(pl.Profiles))
	for i := range order {
		order[i] = i
	}
	// Largest first; equal sizes by ID, so the same objects always lose
	// the same profiles.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	out := *pl
	out.Profiles = slices.Clone(pl.Profiles)
	out.Problems = slices.Clone(pl.Problems)
	need := in.Total
	for _, i := range order {
		if in.Total <= limit || sizes[i] == 0 {
			break
		}
		p := pl.Profiles[i]
		trimmed := *p
		trimmed.Any, trimmed.AnyParts, trimmed.Ports = addrset.Set{}, nil, nil
		out.Profiles[i] = &trimmed
		in.Remove(costs[i])
		out.Problems = append(out.Problems, overBudget(p, sizes[i], need, limit)...)
	}
	slices.SortFunc(out.Problems, func(a, b plan.Problem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Message, b.Message))
	})
	out.Problems = slices.Compact(out.Problems)
	return &out
}

// rangeCache keeps the nft.CostOf the profiles of the last plan: the
// compiler hands unchanged profiles over as the same pointers, so a sync
// costs only the profiles that changed, not the million ranges of a plan
// at the budget every time. A nil cache costs everything.
type rangeCache struct {
	last, used map[*plan.Profile]nft.ProfileCost
}

func (c *rangeCache) cost(p *plan.Profile) nft.ProfileCost {
	if c == nil {
		return nft.CostOf(p)
	}
	n, ok := c.last[p]
	if !ok {
		n = nft.CostOf(p)
	}
	if c.used == nil {
		c.used = make(map[*plan.Profile]nft.ProfileCost, len(c.last))
	}
	c.used[p] = n
	return n
}

// done makes the profiles costed since the last done the cache.
func (c *rangeCache) done() {
	if c != nil {
		c.last, c.used = c.used, nil
	}
}

// overBudget is the Problem of each policy behind p, a profile that lost
// its allows to the budget.
func overBudget(p *plan.Profile, ranges, total, limit int) []plan.Problem {
	var out []plan.Problem
	for _, pol := range p.Policies {
		others := slices.DeleteFunc(slices.Clone(p.Policies), func(s string) bool { return s == pol })
		with := ""
		if len(others) > 0 {
			with = " (with " + strings.Join(others[:min(3, len(others))], ", ")
			if len(others) > 3 {
				with += fmt.Sprintf(" and %d more", len(others)-3)
			}
			with += ")"
		}
		out = append(out, plan.Problem{
			Policy: pol,
			Field:  "spec." + p.Direction.String(),
			Message: fmt.Sprintf("the %s rules of the pods it selects%s need %d address ranges in the kernel's sets, "+
				"and the node's plan %d, more than its budget of %d: they allow nothing on this node until the plan fits",
				p.Direction, with, ranges, total, limit),
		})
	}
	return out
}
