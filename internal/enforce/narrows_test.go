package enforce

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/conntrack"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

func class(first, last uint16, peers addrset.Set) plan.PortClass {
	return plan.PortClass{Protocol: plan.TCP, First: first, Last: last, Peers: peers}
}

// TestNarrows: a commit needs a cut unless every flow the old plan allows
// the new one allows too.
func TestNarrows(t *testing.T) {
	ten, twenty := ranges(1, 10), ranges(1, 20)
	pod := func(in, eg plan.ProfileID) plan.LocalPod {
		return plan.LocalPod{Namespace: "x", Name: "a", IPs: []netip.Addr{netip.MustParseAddr("10.42.0.11")}, Ingress: in, Egress: eg}
	}
	planOf := func(p plan.LocalPod, profs ...*plan.Profile) *plan.Plan {
		return &plan.Plan{Pods: []plan.LocalPod{p}, Profiles: profs}
	}
	prof := func(any addrset.Set, classes ...plan.PortClass) *plan.Profile {
		return &plan.Profile{ID: "p", Any: any, Ports: classes}
	}
	base := prof(addrset.Set{}, class(80, 80, ten), class(100, 200, ten))
	tiered := prof(addrset.Set{}, class(80, 80, ten))
	tiered.Admin = []*plan.TierRule{{}}
	for _, c := range []struct {
		name       string
		prev, next *plan.Plan
		want       bool
	}{
		{"first commit", nil, planOf(pod("p", ""), base), true},
		{"the same profile", planOf(pod("p", ""), base), planOf(pod("p", ""), base), false},
		{"an equal copy", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(addrset.Set{}, class(80, 80, ten), class(100, 200, ten))), false},
		{"a port added", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(addrset.Set{}, class(80, 80, ten), class(81, 81, ten), class(100, 200, ten))), false},
		{"more peers", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(addrset.Set{}, class(80, 80, twenty), class(100, 200, ten))), false},
		{"a range split in two", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(addrset.Set{}, class(80, 80, ten), class(100, 150, ten), class(151, 200, twenty))), false},
		{"peers moved to any", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(ten)), false},
		{"a port lost", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(addrset.Set{}, class(100, 200, ten))), true},
		{"a gap in the range", planOf(pod("p", ""), base), planOf(pod("p", ""), prof(addrset.Set{}, class(80, 80, ten), class(100, 149, ten), class(151, 200, ten))), true},
		{"fewer peers", planOf(pod("p", ""), prof(addrset.Set{}, class(80, 80, twenty))), planOf(pod("p", ""), base), true},
		{"any lost", planOf(pod("p", ""), prof(ten)), planOf(pod("p", ""), base), true},
		{"newly isolated", planOf(pod("", "")), planOf(pod("p", ""), base), true},
		{"egress newly isolated", planOf(pod("p", ""), base), planOf(pod("p", "p"), base), true},
		{"no longer isolated", planOf(pod("p", ""), base), planOf(pod("", "")), false},
		{"tiers", planOf(pod("p", ""), tiered), planOf(pod("p", ""), prof(ten)), true},
		{"a profile missing in the new plan", planOf(pod("p", ""), base), planOf(pod("p", "")), true},
		{"another address", planOf(pod("", "")), &plan.Plan{Pods: []plan.LocalPod{{Namespace: "x", Name: "a", IPs: []netip.Addr{netip.MustParseAddr("10.42.0.12")}}}}, true},
		{"a pod gone", planOf(pod("", "")), &plan.Plan{}, true},
		{"node addresses", planOf(pod("", "")), &plan.Plan{Pods: []plan.LocalPod{pod("", "")}, NodeAddrs: ten}, true},
	} {
		if got := narrows(c.prev, c.next); got != c.want {
			t.Errorf("%s: narrows = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestNarrowsAgreesWithTheVerdicts: over random changes to a synthetic
// cluster, whenever narrows says a commit cannot deny what the last one
// allowed, no flow between the cluster's addresses on the ports the plans
// name is allowed before and denied after.
func TestNarrowsAgreesWithTheVerdicts(t *testing.T) {
	cfg := synth.Config{Pods: 300, Policies: 60, Nodes: 3, Namespaces: 6, PodsOnNode: 40, Seed: 5}
	s := synth.Generate(cfg)
	cfg.Seed = 6
	pool := synth.Generate(cfg)
	node := synth.NodeName(0)
	p := New(node, policy.Options{DefaultDenyUnknown: true}, nfttest.New())
	p.Load(s)
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	widening, caught := 0, 0 // commits that only widen; narrowing ones where a sampled flow lost
	for step := range 200 {
		prev := p.Plan()
		what := synth.RandomChange(rnd, s, pool, node, step, p)
		sy, err := p.Sync()
		if err != nil {
			t.Fatal(err)
		}
		if sy.Result.Messages == 0 {
			continue
		}
		next := p.Plan()
		narrowed := narrows(prev, next)
		if !narrowed {
			widening++
		}
		before, after := Allowed(prev), Allowed(next)
		for _, f := range sampleFlows(rnd, 2000, s, prev, next) {
			if before(f) && !after(f) {
				if !narrowed {
					t.Fatalf("step %d (%s): narrows says no, yet %v was allowed and is denied", step, what, f)
				}
				caught++
				break
			}
		}
	}
	// Both kinds must occur, and the sample must be able to see a flow
	// lost, or the test proves nothing.
	if widening == 0 || caught == 0 {
		t.Fatalf("%d commits only widened, %d narrowing ones lost a sampled flow: want both above 0", widening, caught)
	}
	t.Logf("of the commits, %d only widened; in %d narrowing ones a sampled flow was lost", widening, caught)
}

// sampleFlows returns n random flows from or to an address of a local pod
// of either plan, between the cluster's pod addresses, the node's and the
// first address of every peer range, on ports at the edges of every port
// class of either plan.
func sampleFlows(rnd *rand.Rand, n int, s *cluster.Snapshot, plans ...*plan.Plan) []conntrack.Flow {
	var local, all []netip.Addr
	ports := []uint16{1, 80, 443, 65535}
	protos := []plan.Protocol{plan.TCP, plan.UDP, plan.SCTP}
	for _, pod := range s.Pods {
		if pod != nil {
			all = append(all, pod.IPs...)
		}
	}
	for _, pl := range plans {
		for _, lp := range pl.Pods {
			local = append(local, lp.IPs...)
		}
		all = append(all, firstAddrs(pl.NodeAddrs)...)
		for _, prof := range pl.Profiles {
			all = append(all, firstAddrs(prof.Any)...)
			for _, c := range prof.Ports {
				all = append(all, firstAddrs(c.Peers)...)
				ports = append(ports, c.First, c.Last, c.First-1, c.Last+1)
			}
		}
	}
	if len(local) == 0 || len(all) == 0 {
		return nil
	}
	out := make([]conntrack.Flow, n)
	for i := range out {
		a, b := local[rnd.IntN(len(local))], all[rnd.IntN(len(all))]
		if rnd.IntN(2) == 0 {
			a, b = b, a
		}
		out[i] = conntrack.Flow{Protocol: protos[rnd.IntN(len(protos))],
			Src: netip.AddrPortFrom(a, 40000), Dst: netip.AddrPortFrom(b, ports[rnd.IntN(len(ports))])}
	}
	return out
}

func firstAddrs(s addrset.Set) []netip.Addr {
	var out []netip.Addr
	for _, r := range append(s.V4(), s.V6()...) {
		out = append(out, r.From, r.To)
	}
	return out
}
