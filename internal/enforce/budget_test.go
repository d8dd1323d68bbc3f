package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// ranges returns a set of n separate /32s starting at 11.b.0.0, apart so
// that none merge.
func ranges(b, n int) addrset.Set {
	var ps []netip.Prefix
	for i := range n {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(b), byte(i / 100), byte(2 * (i % 100))}), 32))
	}
	return addrset.Of(ps...)
}

func profile(id string, dir plan.Direction, any addrset.Set, classes ...addrset.Set) *plan.Profile {
	p := &plan.Profile{ID: plan.ProfileID(id), Direction: dir, Policies: []string{"x/" + id}, Any: any}
	for i, peers := range classes {
		p.Ports = append(p.Ports, plan.PortClass{Protocol: plan.TCP, First: uint16(1000 + i), Last: uint16(1000 + i), Peers: peers})
	}
	return p
}

// TestWithinBudget: over the budget, the largest profiles, in turn, lose
// their allows until the rest fits; each of their policies has a Problem
// naming the direction; the others stay as they are, and so does the
// compiler's plan.
func TestWithinBudget(t *testing.T) {
	small := profile("small", plan.Ingress, ranges(1, 10))
	mid := profile("mid", plan.Egress, addrset.Set{}, ranges(2, 40))
	big := profile("big", plan.Ingress, ranges(3, 5), ranges(4, 60), ranges(5, 60))
	// Equal peers in two classes count once, as the renderer shares them.
	shared := profile("shared", plan.Ingress, addrset.Set{}, ranges(6, 30), ranges(6, 30))
	open := &plan.Profile{ID: "open", Direction: plan.Ingress, NotIsolated: true}
	// Two profiles matching one peer's shared set (nft.CostOf: by parts):
	// the table holds it once, and trimming one profile does not free it.
	peer := plan.PeerSet{Key: "peer", Addrs: ranges(9, 50)}
	byParts := func(id string, own addrset.Set) *plan.Profile {
		p := profile(id, plan.Ingress, addrset.Set{}, peer.Addrs, own)
		p.Ports[0].Parts = []plan.PeerSet{peer}
		return p
	}
	partsA, partsB := byParts("parts-a", ranges(10, 30)), byParts("parts-b", ranges(11, 10))
	for _, c := range []struct {
		name     string
		profiles []*plan.Profile
		limit    int
		trimmed  []string // the profiles that lose their allows
	}{
		{"under the budget", []*plan.Profile{small, mid, big}, 1000, nil},
		{"exactly the budget", []*plan.Profile{small, mid, big}, 175, nil},
		{"one over: the largest goes", []*plan.Profile{small, mid, big}, 174, []string{"big"}},
		{"the largest is not enough", []*plan.Profile{small, mid, big}, 45, []string{"big", "mid"}},
		{"nothing fits", []*plan.Profile{small, mid, big, open}, 0, []string{"big", "mid", "small"}},
		{"shared classes count once", []*plan.Profile{small, shared}, 40, nil},
		{"a shared peer set counts once", []*plan.Profile{partsA, partsB}, 90, nil},
		{"a shared peer set stays with its other profile", []*plan.Profile{partsA, partsB}, 89, []string{"parts-a"}},
		{"a shared peer set leaves with its last profile", []*plan.Profile{partsA, partsB}, 9, []string{"parts-a", "parts-b"}},
		{"equal sizes: the first by ID", []*plan.Profile{profile("a", plan.Ingress, ranges(7, 20)), profile("b", plan.Ingress, ranges(8, 20))}, 30, []string{"a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pl := &plan.Plan{Profiles: c.profiles, Problems: []plan.Problem{{Policy: "x/other", Field: "spec.ingress[0]", Message: "kept"}}}
			got := withinBudget(pl, c.limit, &rangeCache{})
			if c.trimmed == nil && got != pl {
				t.Fatalf("a plan within the budget was copied")
			}
			var trimmed, problems []string
			for i, p := range got.Profiles {
				orig := pl.Profiles[i]
				if p.ID != orig.ID || p.Direction != orig.Direction || !slices.Equal(p.Policies, orig.Policies) {
					t.Fatalf("profile %d changed identity: %+v", i, p)
				}
				if p == orig {
					continue
				}
				if !p.Any.IsEmpty() || len(p.Ports) != 0 {
					t.Errorf("profile %s over budget still allows %v and %d classes", p.ID, p.Any, len(p.Ports))
				}
				if orig.Any.IsEmpty() && len(orig.Ports) == 0 {
					t.Errorf("profile %s was changed though it allowed nothing", p.ID)
				}
				trimmed = append(trimmed, string(p.ID))
			}
			for _, pr := range got.Problems {
				problems = append(problems, pr.Policy+" "+pr.Field)
			}
			slices.Sort(trimmed)
			want := slices.Clone(c.trimmed)
			slices.Sort(want)
			if !slices.Equal(trimmed, want) {
				t.Fatalf("trimmed %v, want %v", trimmed, want)
			}
			wantProblems := []string{"x/other spec.ingress[0]"}
			for _, id := range c.trimmed {
				for _, p := range c.profiles {
					if string(p.ID) == id {
						wantProblems = append(wantProblems, "x/"+id+" spec."+p.Direction.String())
					}
				}
			}
			slices.Sort(wantProblems)
			if !slices.Equal(problems, wantProblems) {
				t.Fatalf("problems %v, want %v", problems, wantProblems)
			}
			for _, p := range c.profiles {
				if p.Any.IsEmpty() && len(p.Ports) == 0 && !p.NotIsolated {
					t.Fatalf("withinBudget modified the compiler's profile %s", p.ID)
				}
			}
		})
	}
}

// hostile returns a policy selecting x/a whose rules need ports×(ports+1)/2
// address ranges: rule i allows ports 2000+i..2000+n from its own /24, so
// port class j holds the peers of rules 0..j, a set of its own.
func hostile(name string, n int) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}}
	end := int32(2000 + n)
	for i := range n {
		port := intstr.FromInt32(int32(2000 + i))
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{{Port: &port, EndPort: &end}},
			From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("11.%d.%d.0/24", i/100, 2*(i%100))}}},
		})
	}
	return np
}

// TestPlanOverBudgetRefusesOnlyItsPart: a policy whose rules need more set
// elements than the budget loses its allows (its pod stays isolated) with a
// Problem naming it, while the rest of the plan is committed, and a policy
// added after it is enforced; once it goes, its pod's allows return.
func TestPlanOverBudgetRefusesOnlyItsPart(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{DefaultDenyUnknown: true}, conn)
	p.maxPeerRanges = 1000
	p.Load(cutCluster())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(hostile("big", 60)) // 1,830 ranges
	s, err := p.Sync()
	if err != nil {
		t.Fatalf("a plan over budget: %v, want its large part refused and the rest committed", err)
	}
	prof := s.Plan.Profile(s.Plan.Pods[0].Ingress)
	if s.Plan.Pods[0].Name != "a" || prof == nil || !prof.Any.IsEmpty() || len(prof.Ports) != 0 {
		t.Fatalf("x/a's ingress profile over budget: %+v, want isolated and allowing nothing", prof)
	}
	if !problemOf(s.Plan, "x/big", "spec.ingress", "budget of 1000") {
		t.Fatalf("no problem names x/big and the budget: %v", s.Plan.Problems)
	}
	elems := 0
	for _, set := range p.Desired().Sets {
		elems += len(set.Ranges)
	}
	if elems > 100 {
		t.Fatalf("the committed table's sets hold %d ranges, want none of x/big's peers", elems)
	}

	// A later, unrelated change goes through: x/b isolated, port 80 allowed.
	other := ingressTo80()
	other.Name, other.Spec.PodSelector.MatchLabels = "b-80", map[string]string{"app": "b"}
	p.SetPolicy(other)
	s, err = p.Sync()
	if err != nil || s.Result.Messages == 0 {
		t.Fatalf("an unrelated policy after the one over budget: messages %d, %v", s.Result.Messages, err)
	}
	if b := s.Plan.Profile(s.Plan.Pods[1].Egress); s.Plan.Pods[1].Ingress == "" || b != nil {
		t.Fatalf("x/b after b-80: %+v", s.Plan.Pods[1])
	}
	if pr := s.Plan.Profile(s.Plan.Pods[1].Ingress); len(pr.Ports) != 1 || problemOf(s.Plan, "x/b-80", "", "") {
		t.Fatalf("x/b's profile %+v, problems %v: want port 80 allowed and no problem", pr, s.Plan.Problems)
	}

	p.DeletePolicy("x/big")
	p.SetPolicy(hostile("fits", 20)) // 210 ranges
	s, err = p.Sync()
	if err != nil || len(s.Plan.Problems) != 0 {
		t.Fatalf("after the policy went: %v, problems %v", err, s.Plan.Problems)
	}
	if prof := s.Plan.Profile(s.Plan.Pods[0].Ingress); len(prof.Ports) != 20 {
		t.Fatalf("x/a's profile within the budget has %d port classes, want 20", len(prof.Ports))
	}
}

func problemOf(pl *plan.Plan, policy, field, text string) bool {
	return slices.ContainsFunc(pl.Problems, func(p plan.Problem) bool {
		return p.Policy == policy && strings.HasPrefix(p.Field, field) && strings.Contains(p.Message, text)
	})
}

// TestEqualPeersShareOneSet: one rule of many separate ports and many peers
// (the shape that made the kernel exhaust memory before classes shared
// their sets) costs its peers once: within the budget, one chain and one
// pair of sets for every port.
func TestEqualPeersShareOneSet(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{DefaultDenyUnknown: true}, conn)
	p.maxPeerRanges = 1000
	p.Load(cutCluster())
	wide := ingressTo80()
	wide.Name = "wide"
	rule := networkingv1.NetworkPolicyIngressRule{}
	for i := range 200 {
		port := intstr.FromInt32(int32(2000 + 2*i))
		rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Port: &port})
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("11.%d.%d.0/24", i/100, 2*(i%100))}})
	}
	wide.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{rule}
	p.SetPolicy(wide)
	s, err := p.Sync()
	if err != nil || len(s.Plan.Problems) != 0 {
		t.Fatalf("200 ports x 200 peers in one rule: %v, problems %v", err, s.Plan.Problems)
	}
	chains, sets := 0, 0
	for name := range p.desired.Chains {
		if strings.Contains(name, "-tcp-2") {
			chains++
		}
	}
	for name, set := range p.desired.Sets {
		if strings.Contains(name, "-tcp-2") && len(set.Ranges) == 200 {
			sets++
		}
	}
	if chains != 1 || sets != 1 {
		t.Fatalf("the 200 port classes of equal peers have %d chains and %d IPv4 sets of the 200 peers, want 1 and 1", chains, sets)
	}
}

// TestRangeCacheKeepsTheLastPlansProfiles: the sizes of the profiles of
// the last plan are kept, by pointer, and only those.
func TestRangeCacheKeepsTheLastPlansProfiles(t *testing.T) {
	a, b := profile("a", plan.Ingress, ranges(1, 10)), profile("b", plan.Ingress, ranges(2, 20))
	var c rangeCache
	withinBudget(&plan.Plan{Profiles: []*plan.Profile{a, b}}, 100, &c)
	if len(c.last) != 2 || c.last[a].Own != 10 || c.last[b].Own != 20 {
		t.Fatalf("after the first plan: %v", c.last)
	}
	a2 := profile("a", plan.Ingress, ranges(1, 40))
	got := withinBudget(&plan.Plan{Profiles: []*plan.Profile{a2, b}}, 50, &c)
	if len(c.last) != 2 || c.last[a2].Own != 40 || c.last[b].Own != 20 || got.Profiles[0] == a2 {
		t.Fatalf("after a changed profile: cache %v, want a's new size counted, the old one dropped, and a over the budget", c.last)
	}
}
