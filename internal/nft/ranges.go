package nft

import (
	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// ProfileCost is what one profile's NetworkPolicy part puts into the
// table's sets, laid out as Render lays it out: Own is the address ranges
// of the unions matched in sets of the profile's own (once for the port
// classes that share one), Shared the peer sets it matches by parts, which
// the table holds once however many profiles use them.
type ProfileCost struct {
	Own    int
	Shared []plan.PeerSet
}

// CostOf returns p's ProfileCost. It is a pure function of p, so a caller
// may keep it for as long as it keeps p.
func CostOf(p *plan.Profile) ProfileCost {
	var c ProfileCost
	c.add(p.Any, p.AnyParts)
	peers := make([]addrset.Set, len(p.Ports))
	for j, pc := range p.Ports {
		peers[j] = pc.Peers
	}
	all := addrset.All()
	for j, first := range addrset.Distinct(peers) {
		if first == j && !peers[j].Equal(all) {
			c.add(peers[j], p.Ports[j].Parts)
		}
	}
	return c
}

func (c *ProfileCost) add(union addrset.Set, parts []plan.PeerSet) {
	if byParts(parts) {
		c.Shared = append(c.Shared, parts...)
	} else {
		c.Own += union.Len()
	}
}

// PeerRanges returns the address ranges the NetworkPolicy parts of pl's
// profiles put into the table's sets, so a budget can be checked before
// rendering: a peer's shared set counts once, for the first profile (in
// plan order) that uses it. byProfile is parallel to pl.Profiles.
func PeerRanges(pl *plan.Plan) (total int, byProfile []int) {
	seen := map[string]bool{}
	byProfile = make([]int, len(pl.Profiles))
	for i, p := range pl.Profiles {
		c := CostOf(p)
		n := c.Own
		for _, pt := range c.Shared {
			if !seen[pt.Key] {
				seen[pt.Key] = true
				n += pt.Addrs.Len()
			}
		}
		byProfile[i] = n
		total += n
	}
	return total, byProfile
}
