package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// TestCompilerEqualsCompileWithTiers drives a Compiler through random
// changes as TestCompilerEqualsCompile does, with ClusterNetworkPolicies of
// both tiers added, replaced (other rules, priority, tier, subject) and
// deleted among them, and checks after every batch that its plan is exactly
// Compile's and, every few steps, that it decides every connection of the
// node's pods as Decide does.
func TestCompilerEqualsCompileWithTiers(t *testing.T) {
	steps, incremental, cnpChanges := 0, 0, 0
	for seed := range uint64(40) {
		rnd := rand.New(rand.NewPCG(seed, 0x71e2))
		s := randomTieredSnapshot(rnd)
		c := NewCompiler("node-1", Options{})
		c.Load(s)
		requireSamePlan(t, c, Options{}, fmt.Sprintf("seed %d, initial", seed))
		m := &mutator{rnd: rnd, g: &randGen{rnd: rnd}, c: c, next: 100}
		for step := range 30 {
			var did []string
			for range 1 + rnd.IntN(4) {
				if rnd.IntN(3) == 0 {
					did = append(did, m.changeCNP())
					cnpChanges++
				} else {
					did = append(did, m.mutate())
				}
			}
			when := fmt.Sprintf("seed %d, step %d after %s", seed, step, strings.Join(did, "; "))
			requireSamePlan(t, c, Options{}, when)
			steps++
			if !c.LastUpdate().Full {
				incremental++
			}
			if step%15 == 14 {
				requireDecides(t, c, when)
			}
		}
	}
	t.Logf("%d steps, %d incremental, %d ClusterNetworkPolicy changes", steps, incremental, cnpChanges)
	if incremental < steps*8/10 {
		t.Errorf("only %d of %d plans were incremental", incremental, steps)
	}
}

// changeCNP adds, replaces or deletes a ClusterNetworkPolicy.
func (m *mutator) changeCNP() string {
	snap := sorted(m.c.Snapshot())
	cnps := snap.ClusterNetworkPolicies
	switch r := m.pick(5); {
	case r < 2 || len(cnps) == 0:
		p := m.g.cnp(snap, m.next)
		m.next++
		m.c.SetClusterNetworkPolicy(p)
		return "add cnp " + p.Name
	case r < 3:
		p := cnps[m.pick(len(cnps))]
		m.c.DeleteClusterNetworkPolicy(p.Name)
		return "delete cnp " + p.Name
	default:
		old := cnps[m.pick(len(cnps))]
		p := m.g.cnp(snap, 0)
		p.Name = old.Name
		m.c.SetClusterNetworkPolicy(p)
		return "replace cnp " + p.Name
	}
}

// requireDecides checks the Compiler's plan against Decide for every
// connection from or to a pod of its node.
func requireDecides(t *testing.T, c *Compiler, when string) {
	t.Helper()
	pl := c.Plan()
	s := c.Snapshot()
	// The mutator lets pods share an address for a while; which of them
	// the plan means is then the dataplane's pick, not a policy question.
	users := map[string]int{}
	for _, e := range endpoints(s) {
		users[e.IP.String()]++
	}
	for _, from := range endpoints(s) {
		for _, to := range endpoints(s) {
			if from.IP.Is4() != to.IP.Is4() || users[from.IP.String()] > 1 || users[to.IP.String()] > 1 {
				continue
			}
			for _, pp := range probePorts {
				v := Decide(s, from, to, pp.proto, pp.port)
				if onNode(from, "node-1") {
					if got := pl.AllowsEgress(from.IP, to.IP, pp.proto, pp.port); got != v.Egress.Allowed {
						t.Fatalf("%s: %s -> %s %v/%d: egress plan says %v, Decide %+v", when, describe(from), describe(to), pp.proto, pp.port, got, v.Egress)
					}
				}
				if onNode(to, "node-1") {
					want := v.Ingress.Allowed || fromOwnNode(s, from, to)
					if got := pl.AllowsIngress(from.IP, to.IP, pp.proto, pp.port); got != want {
						t.Fatalf("%s: %s -> %s %v/%d: ingress plan says %v, Decide %+v", when, describe(from), describe(to), pp.proto, pp.port, got, v.Ingress)
					}
				}
			}
		}
	}
}

func onNode(e Endpoint, node string) bool {
	return e.Pod != nil && e.Pod.NodeName == node && e.Pod.Enforceable()
}

var _ = cluster.TierAdmin
