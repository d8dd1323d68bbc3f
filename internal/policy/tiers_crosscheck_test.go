package policy

import (
	"math/rand/v2"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// TestTieredPlansMatchDecide compares, over many random clusters with
// ClusterNetworkPolicies of both tiers (equal priorities, Pass, fail-closed
// rules, named ports, nodes and networks peers) and NetworkPolicies, the
// compiled plans of every node with the tiers' reference evaluator
// (Decide), for every ordered pair of endpoints, each family and the probe
// ports.
//
// One difference is by design and checked as such: the node a pod runs on
// may always reach it (kubelet probes), whatever a fail-closed admin rule
// says; Decide, which knows no dataplane, lets such a rule deny it.
func TestTieredPlansMatchDecide(t *testing.T) {
	const snapshots = 60
	checked, allowed := 0, 0
	byTier := map[DecidedBy]int{}
	for seed := range uint64(snapshots) {
		rnd := rand.New(rand.NewPCG(seed, 0x7e1e5))
		s := randomTieredSnapshot(rnd)
		plans := planCache(s, Options{})
		eps := endpoints(s)
		for _, from := range eps {
			for _, to := range eps {
				if from.IP.Is4() != to.IP.Is4() {
					continue
				}
				for _, pp := range probePorts {
					v := Decide(s, from, to, pp.proto, pp.port)
					want := v.Allowed
					if !want && v.Egress.Allowed && fromOwnNode(s, from, to) {
						want = true
					}
					got := planAllowed(plans, from, to, pp.proto, pp.port)
					checked++
					byTier[v.Egress.By]++
					byTier[v.Ingress.By]++
					if want {
						allowed++
					}
					if got != want {
						t.Fatalf("seed %d: %s -> %s %v/%d: plan says %v, Decide says %v\n  egress: %+v\n  ingress: %+v\n%s",
							seed, describe(from), describe(to), pp.proto, pp.port, got, want, v.Egress, v.Ingress, dump(s))
					}
				}
			}
		}
	}
	t.Logf("%d connections checked over %d clusters, %d allowed; directions by %v", checked, snapshots, allowed, byTier)
	if allowed < checked/10 || allowed > checked*9/10 {
		t.Errorf("only %d of %d connections allowed: the random clusters exercise too little", allowed, checked)
	}
	for _, by := range []DecidedBy{ByAdmin, ByNetworkPolicy, ByBaseline, ByDefault} {
		if byTier[by] < checked/100 {
			t.Errorf("only %d directions decided by %s: the random clusters exercise too little", byTier[by], by)
		}
	}
}

// fromOwnNode reports whether from is an address of the node the
// destination pod runs on, which the dataplane always lets in.
func fromOwnNode(s *cluster.Snapshot, from, to Endpoint) bool {
	if to.Pod == nil || !to.Pod.Enforceable() {
		return false
	}
	for _, n := range s.Nodes {
		if n.Name == to.Pod.NodeName && refAddrIn(n.Addresses, from.IP) {
			return true
		}
	}
	return false
}

var _ = plan.TCP
