package nft

import (
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// TestRangesCountTheTable: Ranges over every profile's CostOf, as the
// budget counts, is the number of elements the rendered table holds in the
// profiles' address sets (the shared peer sets and the profiles' own
// unions), for a hand-written plan and for compiled ones, where most peers
// are shared.
func TestRangesCountTheTable(t *testing.T) {
	compiled := func(pods, policies int) *plan.Plan {
		s := synth.Generate(synth.Config{Pods: pods, Policies: policies, Nodes: 10, Namespaces: 10, PodsOnNode: 60, Seed: 3})
		return policy.Compile(s, synth.NodeName(0), policy.Options{})
	}
	for name, pl := range map[string]*plan.Plan{"small": testPlan(), "1k pods": compiled(1000, 100), "3k pods": compiled(3000, 300)} {
		var r Ranges
		for _, p := range pl.Profiles {
			r.Add(CostOf(p))
		}
		total := r.Total
		tab := Render(pl)
		inTable, shared := 0, 0
		for sname, s := range tab.Sets {
			if (s.Type != Addr4 && s.Type != Addr6 && s.Type != Host4 && s.Type != Host6) || strings.HasPrefix(sname, "node-addrs-") || strings.HasPrefix(sname, "pod-cidrs-") {
				continue
			}
			inTable += s.Len()
			if strings.HasPrefix(sname, peerSetsPrefix) {
				shared++
			}
		}
		if total != inTable {
			t.Errorf("%s: Ranges counts %d, the table holds %d", name, total, inTable)
		}
		if name != "small" && shared == 0 {
			t.Errorf("%s: no shared peer set in the table", name)
		}
		t.Logf("%s: %d ranges, %d shared sets", name, total, shared)
	}
}
