package nft

import (
	"cmp"
	"slices"

	"github.com/kube-fence/kube-fence/internal/policy"
)

// Profiles are named in the table after their ID (profileChain), with one
// exception a Renderer makes: a new profile may take over the name of a
// profile that went away with the same pods. Adding a policy to the pods of
// a profile gives them a new profile ID (IDs name the policies), but most of
// its chains and sets are the old profile's; under the old name they change
// element by element in the kernel instead of being created anew with every
// element (thousands at 10k pods), and the old ones deleted. Render, with no
// history, always uses the ID's own name.

// profileNames returns the table names of the plan's profiles: the name a
// profile had in the last render, else the name of a profile that is gone
// and held most of the same pods in the same direction, else its own.
func (r *Renderer) profileNames(plan *policy.Plan) map[policy.ProfileID]string {
	names := make(map[policy.ProfileID]string, len(plan.Profiles))
	used := map[string]bool{}
	var fresh []*policy.Profile
	for _, p := range plan.Profiles {
		if n, ok := r.names[p.ID]; ok {
			names[p.ID], used[n] = n, true
		} else {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) > 0 && len(r.names) > len(plan.Profiles)-len(fresh) {
		r.inherit(plan, fresh, names, used)
	}
	for _, p := range fresh {
		if _, ok := names[p.ID]; ok {
			continue
		}
		n := profileChain(p.Direction, p.ID)
		for i := 2; used[n]; i++ { // its own name went to another profile
			n = profileChain(p.Direction, p.ID) + "_" + itoa(i)
		}
		names[p.ID], used[n] = n, true
	}
	return names
}

// inherit gives new profiles the names of gone profiles whose pods they
// hold, the most shared pods first.
func (r *Renderer) inherit(plan *policy.Plan, fresh []*policy.Profile, names map[policy.ProfileID]string, used map[string]bool) {
	type pair struct {
		now, before policy.ProfileID
		dir         policy.Direction
	}
	isFresh := map[policy.ProfileID]bool{}
	for _, p := range fresh {
		isFresh[p.ID] = true
	}
	shared := map[pair]int{}
	for _, pod := range plan.Pods {
		before := r.pods[pod.Key()]
		for _, c := range []pair{{pod.Ingress, before[0], policy.Ingress}, {pod.Egress, before[1], policy.Egress}} {
			if c.now == "" || c.before == "" || !isFresh[c.now] {
				continue
			}
			if n, ok := r.names[c.before]; ok && !used[n] && plan.Profile(c.before) == nil {
				shared[c]++
			}
		}
	}
	pairs := make([]pair, 0, len(shared))
	for c := range shared {
		pairs = append(pairs, c)
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(cmp.Compare(shared[b], shared[a]), cmp.Compare(a.now, b.now), cmp.Compare(a.before, b.before))
	})
	for _, c := range pairs {
		n := r.names[c.before]
		if _, named := names[c.now]; !named && !used[n] {
			names[c.now], used[n] = n, true
		}
	}
}

// podProfiles records which profiles each pod had, for the next render.
func podProfiles(plan *policy.Plan) map[string][2]policy.ProfileID {
	out := make(map[string][2]policy.ProfileID, len(plan.Pods))
	for _, p := range plan.Pods {
		out[p.Key()] = [2]policy.ProfileID{p.Ingress, p.Egress}
	}
	return out
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
