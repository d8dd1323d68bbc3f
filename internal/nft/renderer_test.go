package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// TestRendererEqualsRender follows a synthetic cluster through random
// changes with policy.Compiler and checks that the Renderer's table, built
// from what it rendered before, is exactly Render's table of the same plan,
// and that it reused what the change did not touch.
func TestRendererEqualsRender(t *testing.T) { followChanges(t, nil) }

// followChanges makes random changes to a synthetic cluster and renders
// each plan with one Renderer, comparing with Render; sync, if set, gets
// every table. (internal/enforce's TestPipelineFollowsChangesInTheKernel
// sends the same changes into a kernel.)
func followChanges(t *testing.T, sync func(step string, want *Table)) {
	cfg := synth.Config{Pods: 2000, Policies: 200, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 21}
	s := synth.Generate(cfg)
	cfg.Seed = 22
	pool := synth.Generate(cfg)
	node := synth.NodeName(0)
	c := policy.NewCompiler(node, policy.Options{DefaultDenyUnknown: true})
	c.Load(s)
	var r Renderer
	prev := r.Render(c.Plan())
	if sync != nil {
		sync("first sync", prev)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	reused, total := 0, 0
	for step := range 40 {
		what := synth.RandomChange(rnd, s, pool, node, step, c)
		pl := c.Plan()
		got, want := r.Render(pl), Render(pl)
		if d := Diff(want, got); !d.Empty() {
			t.Fatalf("step %d (%s): the Renderer's table differs from Render's:\n%v", step, what, d.Differences)
		}
		if Text(got) != Text(want) {
			t.Fatalf("step %d (%s): same objects, different text", step, what)
		}
		if sync != nil {
			sync(fmt.Sprintf("step %d (%s)", step, what), got)
		}
		for name, set := range got.Sets {
			total++
			if prev.Sets[name] == set {
				reused++
			}
		}
		prev = got
	}
	if reused < total*9/10 {
		t.Errorf("only %d of %d sets were reused across single changes", reused, total)
	}
}

// TestDiffSkipsSharedObjects checks that a table sharing every object with
// the committed one is found equal without looking inside, and that a
// changed set is still found.
func TestDiffSkipsSharedObjects(t *testing.T) {
	pl := testPlan()
	var r Renderer
	a := r.Render(pl)
	b := r.Render(pl)
	for name, s := range b.Sets {
		if a.Sets[name] != s && name != setEgressPods4 && name != setEgressPods6 && name != setIngressPods4 && name != setIngressPods6 {
			t.Errorf("set %s was rendered again for the same pl", name)
		}
	}
	if d := Diff(b, a); !d.Empty() {
		t.Fatalf("same pl: %v", d.Differences)
	}
	pl.Pods = append(pl.Pods, plan.LocalPod{Namespace: "x", Name: "c", IPs: []netip.Addr{netip.MustParseAddr("10.42.0.12")}})
	c := r.Render(pl)
	d := Diff(c, b)
	if added, _ := d.Elements(); added != 2 || len(d.Differences) != 2 {
		t.Errorf("one pod added: %v", d.Differences)
	}
}
