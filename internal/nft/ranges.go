package nft

import (
	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// ProfileCost is what one profile's NetworkPolicy part puts into the
// table's sets, laid out as Render lays it out: Own is the address ranges
// of the unions matched in sets of the profile's own (once for the port
// classes that share one), Shared the peer sets it matches by parts, each
// once, which the table holds once however many profiles use them.
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
	if !byParts(parts) {
		c.Own += union.Len()
		return
	}
	// A profile may match one peer both on every port and in a class.
	for _, pt := range parts {
		if !containsKey(c.Shared, pt.Key) {
			c.Shared = append(c.Shared, pt)
		}
	}
}

func containsKey(ps []plan.PeerSet, key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return true
		}
	}
	return false
}

// Alone is the address ranges p's sets hold when no other profile shares
// them.
func (c ProfileCost) Alone() int {
	n := c.Own
	for _, pt := range c.Shared {
		n += pt.Addrs.Len()
	}
	return n
}

// Ranges counts the address ranges a set of profiles puts into the table,
// each shared peer set once, as profiles are added and removed.
type Ranges struct {
	Total int
	refs  map[string]int // profiles matching each shared set
}

// Add counts a profile's sets in.
func (r *Ranges) Add(c ProfileCost) {
	if r.refs == nil {
		r.refs = map[string]int{}
	}
	r.Total += c.Own
	for _, pt := range c.Shared {
		if r.refs[pt.Key]++; r.refs[pt.Key] == 1 {
			r.Total += pt.Addrs.Len()
		}
	}
}

// Remove counts a profile's sets out: a shared set leaves with the last
// profile matching it.
func (r *Ranges) Remove(c ProfileCost) {
	r.Total -= c.Own
	for _, pt := range c.Shared {
		if r.refs[pt.Key]--; r.refs[pt.Key] == 0 {
			r.Total -= pt.Addrs.Len()
		}
	}
}
