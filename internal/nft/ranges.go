package nft

import (
	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// PeerRanges returns the address ranges the NetworkPolicy parts of pl's
// profiles put into the table's sets, laid out as Render lays them out, so
// a budget can be checked before rendering: a peer's shared set counts
// once in the table, for the first profile (in plan order) that uses it; a
// union matched in sets of its own counts for its profile, once for the
// port classes that share it. byProfile is parallel to pl.Profiles.
func PeerRanges(pl *plan.Plan) (total int, byProfile []int) {
	seen := map[string]bool{}
	byProfile = make([]int, len(pl.Profiles))
	for i, p := range pl.Profiles {
		n := unionRanges(p.Any, p.AnyParts, seen)
		peers := make([]addrset.Set, len(p.Ports))
		for j, c := range p.Ports {
			peers[j] = c.Peers
		}
		all := addrset.All()
		for j, first := range addrset.Distinct(peers) {
			if first == j && !peers[j].Equal(all) {
				n += unionRanges(peers[j], p.Ports[j].Parts, seen)
			}
		}
		byProfile[i] = n
		total += n
	}
	return total, byProfile
}

// unionRanges is what one union adds to the table, given the shared sets
// seen so far.
func unionRanges(union addrset.Set, parts []plan.PeerSet, seen map[string]bool) int {
	if !byParts(parts) {
		return union.Len()
	}
	n := 0
	for _, pt := range parts {
		if !seen[pt.Key] {
			seen[pt.Key] = true
			n += pt.Addrs.Len()
		}
	}
	return n
}
