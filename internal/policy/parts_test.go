package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// TestPeerPartsMakeTheUnions checks, over random clusters, what lets the
// dataplane match a profile's peer parts in place of its unions: AnyParts
// are exactly Any, each port class's parts less Any are exactly its peers,
// and a key names the same addresses in every profile of the plan.
func TestPeerPartsMakeTheUnions(t *testing.T) {
	withParts := 0
	for seed := range uint64(200) {
		rnd := rand.New(rand.NewPCG(seed, 0x9a27))
		s := randomSnapshot(rnd)
		nodes := map[string]bool{}
		for _, p := range s.Pods {
			nodes[p.NodeName] = true
		}
		for node := range nodes {
			pl := Compile(s, node, Options{})
			if err := checkParts(pl); err != nil {
				t.Fatalf("seed %d, node %s: %v\n%s", seed, node, err, dump(s))
			}
			for _, p := range pl.Profiles {
				if len(p.AnyParts) > 1 || slices.ContainsFunc(p.Ports, func(c plan.PortClass) bool { return len(c.Parts) > 1 }) {
					withParts++
				}
			}
		}
	}
	// Guard against clusters whose unions are all of one peer.
	if withParts < 100 {
		t.Errorf("only %d profiles have a union of several peers", withParts)
	}
}

// checkParts returns what breaks the parts' contract in pl, or nil.
func checkParts(pl *plan.Plan) error {
	byKey := map[string]addrset.Set{}
	sameKey := func(ps []plan.PeerSet) error {
		for i, p := range ps {
			if i > 0 && ps[i-1].Key >= p.Key {
				return fmt.Errorf("parts not sorted by key, or a key twice: %s after %s", p.Key, ps[i-1].Key)
			}
			if prev, ok := byKey[p.Key]; ok && !prev.Equal(p.Addrs) {
				return fmt.Errorf("part %s is %v in one profile and %v in another", p.Key, prev, p.Addrs)
			}
			byKey[p.Key] = p.Addrs
		}
		return nil
	}
	union := func(ps []plan.PeerSet) addrset.Set {
		var b addrset.Builder
		for _, p := range ps {
			b.AddSet(p.Addrs)
		}
		return b.Set()
	}
	for _, p := range pl.Profiles {
		if err := sameKey(p.AnyParts); err != nil {
			return fmt.Errorf("profile %s any: %w", p.ID, err)
		}
		if u := union(p.AnyParts); !u.Equal(p.Any) {
			return fmt.Errorf("profile %s: any is %v, its parts make %v", p.ID, p.Any, u)
		}
		for _, c := range p.Ports {
			if err := sameKey(c.Parts); err != nil {
				return fmt.Errorf("profile %s %v/%d-%d: %w", p.ID, c.Protocol, c.First, c.Last, err)
			}
			if u := union(c.Parts).Subtract(p.Any); !u.Equal(c.Peers) {
				return fmt.Errorf("profile %s %v/%d-%d: peers are %v, the parts less any make %v",
					p.ID, c.Protocol, c.First, c.Last, c.Peers, u)
			}
		}
	}
	return nil
}
