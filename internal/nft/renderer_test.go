package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// TestRendererEqualsRender follows a synthetic cluster through random
// changes with policy.Compiler and checks that the Renderer's table, built
// from what it rendered before, is exactly Render's table of the same plan,
// and that it reused what the change did not touch.
func TestRendererEqualsRender(t *testing.T) { followChanges(t, nil) }

// TestIncrementalSyncOfChanges follows the same changes into a kernel: each
// plan is rendered incrementally and synced, and both the read back of what
// the transaction changed and the full read back must find the kernel's
// table equal to the desired one.
func TestIncrementalSyncOfChanges(t *testing.T) {
	ns := newNS(t)
	conn := openConn(t, ns, OwnershipAuto)
	n := 0
	followChanges(t, func(step string, want *Table) {
		n++
		res, err := conn.Sync(want)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		d, err := conn.VerifyApplied(want, res.Delta)
		if err != nil {
			t.Fatalf("%s: verify applied: %v", step, err)
		}
		if !d.Empty() {
			t.Fatalf("%s: verify applied: %v", step, d.Differences)
		}
		if n%4 == 1 { // the full read back is slow at this size
			requireNoDiff(t, conn, want, step)
		}
	})
}

// followChanges makes random changes to a synthetic cluster and renders
// each plan with one Renderer, comparing with Render; sync, if set, gets
// every table.
func followChanges(t *testing.T, sync func(step string, want *Table)) {
	cfg := synth.Config{Pods: 2000, Policies: 200, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 21}
	s := synth.Generate(cfg)
	cfg.Seed = 22
	pool := synth.Generate(cfg)
	node := synth.NodeName(0)
	c := policy.NewCompiler(node, policy.Options{DefaultDenyUnknown: true})
	for _, ns := range s.Namespaces {
		c.SetNamespace(ns)
	}
	for _, p := range s.Pods {
		c.SetPod(p)
	}
	for _, np := range s.Policies {
		c.SetPolicy(np)
	}
	for _, n := range s.Nodes {
		c.SetNode(n)
	}
	var r Renderer
	prev := r.Render(c.Plan())
	if sync != nil {
		sync("first sync", prev)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	reused, total, inherited := 0, 0, 0
	for step := range 40 {
		var what string
		switch rnd.IntN(4) {
		case 0:
			p := *pool.Pods[rnd.IntN(len(pool.Pods))]
			p.Name = fmt.Sprintf("added-%d", step)
			if step%3 == 0 {
				p.NodeName = node
			}
			c.SetPod(&p)
			what = "add pod"
		case 1:
			p := *s.Pods[rnd.IntN(len(s.Pods))]
			p.Labels = pool.Pods[rnd.IntN(len(pool.Pods))].Labels
			c.SetPod(&p)
			what = "relabel pod"
		case 2:
			c.SetNamespace(&cluster.Namespace{Name: fmt.Sprintf("ns-%d", rnd.IntN(20)),
				Labels: labels.Set{"team": fmt.Sprintf("team-%d", rnd.IntN(7)), "env": "prod"}})
			what = "relabel namespace"
		default:
			np := pool.Policies[rnd.IntN(len(pool.Policies))].DeepCopy()
			np.Name = fmt.Sprintf("added-%d", step)
			c.SetPolicy(np)
			what = "add policy"
		}
		plan := c.Plan()
		got, want := r.Render(plan), Render(plan)
		renamed := withOwnNames(got, &r, plan)
		if renamed != got {
			inherited++
		}
		if d := Diff(want, renamed); !d.Empty() {
			t.Fatalf("step %d (%s): the Renderer's table differs from Render's:\n%v", step, what, d.Differences)
		}
		if Text(renamed) != Text(want) {
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
	if inherited == 0 {
		t.Error("no profile ever took over another's name: the comparison under own names was never exercised")
	}
}

// TestDiffSkipsSharedObjects checks that a table sharing every object with
// the committed one is found equal without looking inside, and that a
// changed set is still found.
func TestDiffSkipsSharedObjects(t *testing.T) {
	plan := testPlan()
	var r Renderer
	a := r.Render(plan)
	b := r.Render(plan)
	for name, s := range b.Sets {
		if a.Sets[name] != s && name != setEgressPods4 && name != setEgressPods6 && name != setIngressPods4 && name != setIngressPods6 {
			t.Errorf("set %s was rendered again for the same plan", name)
		}
	}
	if d := Diff(b, a); !d.Empty() {
		t.Fatalf("same plan: %v", d.Differences)
	}
	plan.Pods = append(plan.Pods, policy.LocalPod{Namespace: "x", Name: "c", IPs: []netip.Addr{netip.MustParseAddr("10.42.0.12")}})
	c := r.Render(plan)
	d := Diff(c, b)
	if added, _ := d.Elements(); added != 2 || len(d.Differences) != 2 {
		t.Errorf("one pod added: %v", d.Differences)
	}
}

// withOwnNames returns t with every profile under its own name (the name
// Render gives it) instead of one a Renderer let it inherit.
func withOwnNames(t *Table, r *Renderer, plan *policy.Plan) *Table {
	rename := map[string]string{}
	for _, p := range plan.Profiles {
		if n := r.names[p.ID]; n != profileChain(p.Direction, p.ID) {
			rename[n] = profileChain(p.Direction, p.ID)
		}
	}
	if len(rename) == 0 {
		return t
	}
	name := func(n string) string {
		for from, to := range rename {
			if n == from || strings.HasPrefix(n, from+"-") {
				return to + n[len(from):]
			}
		}
		return n
	}
	text := func(s string) string {
		f := strings.Fields(s)
		for i, w := range f {
			if at := strings.HasPrefix(w, "@"); at {
				f[i] = "@" + name(w[1:])
			} else {
				f[i] = name(w)
			}
		}
		return strings.Join(f, " ")
	}
	out := NewTable()
	for _, c := range t.Chains {
		nc := &Chain{Name: name(c.Name), Hook: c.Hook}
		for _, rl := range c.Rules {
			nr := Rule{Comment: rl.Comment, Text: text(rl.Text)}
			for _, e := range rl.Exprs {
				switch x := e.(type) {
				case *expr.Lookup:
					y := *x
					y.SetName = name(y.SetName)
					e = &y
				case *expr.Verdict:
					y := *x
					y.Chain = name(y.Chain)
					e = &y
				}
				nr.Exprs = append(nr.Exprs, e)
			}
			nc.Rules = append(nc.Rules, nr)
		}
		out.AddChain(nc)
	}
	for _, st := range t.Sets {
		ns := *st
		ns.Name = name(st.Name)
		if st.Type.IsMap() {
			ns.Elems = nil
			for _, e := range st.Elements() {
				if e.Verdict != nil {
					v := *e.Verdict
					v.Chain = name(v.Chain)
					e.Verdict = &v
				}
				ns.Elems = append(ns.Elems, e)
			}
		}
		out.AddSet(&ns)
	}
	return out
}

// TestRendererPassesNamesOn: when a policy is added to the pods of a
// profile, their new profile takes over the old one's chains and sets, so
// the change is the new policy's elements, not a new profile's.
func TestRendererPassesNamesOn(t *testing.T) {
	plan := testPlan()
	var r Renderer
	before := r.Render(plan)

	// Pod x/a's ingress profile becomes a new one: same classes, one more
	// peer on one port, one more policy.
	next := *plan
	next.Profiles = nil
	a := netip.MustParseAddr
	for _, p := range plan.Profiles {
		if p.ID == "i000000000001" {
			cp := *p
			cp.ID, cp.Policies = "i0000000000ff", append([]string{"x/added"}, p.Policies...)
			cp.Ports = append([]policy.PortClass(nil), p.Ports...)
			cp.Ports[1].Peers = cp.Ports[1].Peers.Union(addrset.OfAddrs(a("172.16.0.1")))
			p = &cp
		}
		next.Profiles = append(next.Profiles, p)
	}
	slices.SortFunc(next.Profiles, func(x, y *policy.Profile) int { return strings.Compare(string(x.ID), string(y.ID)) })
	next.Pods = slices.Clone(plan.Pods)
	next.Pods[0].Ingress = "i0000000000ff"
	after := r.Render(&next)

	d := Diff(after, before)
	added, deleted := d.Elements()
	if len(d.AddSets)+len(d.AddChains)+len(d.DelSets)+len(d.DelChains) != 0 || added != 1 || deleted != 0 || len(d.ReplaceRules) != 1 {
		t.Errorf("a policy added to a profile's pods: %v; want one range added to the class set and the profile chain's comment", d.Differences)
	}
	if got := withOwnNames(after, &r, &next); !Diff(Render(&next), got).Empty() {
		t.Errorf("under its own names the table is not Render's: %v", Diff(Render(&next), got).Differences)
	}
	// Render, with no history, names the new profile after its ID.
	if Render(&next).Chains["ingress-i0000000000ff"] == nil {
		t.Error("Render does not name the profile after its ID")
	}
}
