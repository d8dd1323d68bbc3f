package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// randomTieredSnapshot is randomSnapshot with labelled nodes and 1 to 6
// ClusterNetworkPolicies of both tiers, with few distinct priorities so
// ties are common. The compiler's cross-check will draw from it too.
func randomTieredSnapshot(rnd *rand.Rand) *cluster.Snapshot {
	s := randomSnapshot(rnd)
	g := &randGen{rnd: rnd}
	for _, n := range s.Nodes {
		n.Labels = g.labels(map[string][]string{"tier": {"x", "y"}, "env": {"p", "q"}})
	}
	for i := range 1 + rnd.IntN(6) {
		s.ClusterNetworkPolicies = append(s.ClusterNetworkPolicies, g.cnp(s, i))
	}
	return s
}

func (g *randGen) cnp(s *cluster.Snapshot, i int) *cluster.ClusterNetworkPolicy {
	tiers := []cluster.CNPTier{admin, admin, baseline, baseline, "Developer"}
	p := &cluster.ClusterNetworkPolicy{Name: fmt.Sprintf("cnp%d", i), Tier: tiers[g.pick(len(tiers))], Priority: int32(g.pick(3))}
	nsChoices := map[string][]string{"team": {"a", "b"}, "env": {"p", "q"}}
	podChoices := map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}}
	switch g.pick(7) {
	case 0, 1, 2:
		p.Subject.Namespaces = g.selector(nsChoices)
	case 3, 4, 5:
		p.Subject.Pods = &cluster.CNPPods{NamespaceSelector: *g.selector(nsChoices), PodSelector: *g.selector(podChoices)}
	} // else: an empty subject
	for range g.pick(4) {
		p.Ingress = append(p.Ingress, g.cnpRule(s, false))
	}
	for range g.pick(4) {
		p.Egress = append(p.Egress, g.cnpRule(s, true))
	}
	return p
}

func (g *randGen) cnpRule(s *cluster.Snapshot, egress bool) cluster.CNPRule {
	actions := []cluster.CNPAction{accept, deny, pass}
	r := cluster.CNPRule{Action: actions[g.pick(len(actions))]}
	if g.pick(20) == 0 {
		r.Action = "Allow" // v1alpha1's word: unknown here, fails closed
	}
	nsChoices := map[string][]string{"team": {"a", "b"}, "env": {"p", "q"}}
	podChoices := map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}}
	for range 1 + g.pick(3) {
		kinds := 2
		if egress {
			kinds = 4
		}
		var peer cluster.CNPPeer
		switch k := g.pick(kinds*4 + 1); {
		case k == kinds*4:
			if g.pick(3) == 0 {
				peer = cluster.CNPPeer{} // unknown to this version: fails closed
			} else {
				peer = cluster.CNPPeer{Namespaces: sel("")}
			}
		case k%kinds == 0:
			peer.Namespaces = g.selector(nsChoices)
		case k%kinds == 1:
			peer.Pods = &cluster.CNPPods{NamespaceSelector: *g.selector(nsChoices), PodSelector: *g.selector(podChoices)}
		case k%kinds == 2:
			peer.Nodes = g.selector(map[string][]string{"tier": {"x", "y"}, "env": {"p", "q"}})
		default:
			peer.Networks = g.networks(s)
		}
		r.Peers = append(r.Peers, peer)
	}
	if g.pick(2) == 0 {
		return r
	}
	for range 1 + g.pick(3) {
		r.Protocols = append(r.Protocols, g.cnpProtocol())
	}
	return r
}

// networks draws CIDRs around real addresses, both families, rarely broken.
func (g *randGen) networks(s *cluster.Snapshot) []string {
	var all []netip.Addr
	for _, p := range s.Pods {
		all = append(all, p.IPs...)
	}
	for _, n := range s.Nodes {
		all = append(all, n.Addresses...)
	}
	var out []string
	for range 1 + g.pick(2) {
		a := all[g.pick(len(all))]
		bits := g.pick(a.BitLen() + 1)
		out = append(out, netip.PrefixFrom(a, bits).Masked().String())
	}
	if g.pick(25) == 0 {
		out = append(out, "10.0.0.0/33")
	}
	return out
}

func (g *randGen) cnpProtocol() cluster.CNPProtocol {
	port := func() *cluster.CNPPorts {
		switch g.pick(5) {
		case 0:
			return &cluster.CNPPorts{} // every port
		case 1:
			lo, hi := portPool[g.pick(len(portPool))], portPool[g.pick(len(portPool))]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo == hi {
				hi++
			}
			return &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Range: &cluster.CNPPortRange{Start: lo, End: hi}}}
		default:
			return &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Number: portPool[g.pick(len(portPool))]}}
		}
	}
	switch g.pick(9) {
	case 0, 1:
		return cluster.CNPProtocol{TCP: port()}
	case 2, 3:
		return cluster.CNPProtocol{UDP: port()}
	case 4:
		return cluster.CNPProtocol{SCTP: port()}
	case 5, 6, 7:
		return cluster.CNPProtocol{DestinationNamedPort: portNames[g.pick(len(portNames))]}
	}
	return cluster.CNPProtocol{TCP: port(), UDP: port()} // two protocols: fails closed
}

// without returns a copy of s without the ClusterNetworkPolicies of a tier
// (and without NetworkPolicies when dropNP).
func without(s *cluster.Snapshot, tier cluster.CNPTier, dropNP bool) *cluster.Snapshot {
	c := *s
	c.ClusterNetworkPolicies = slices.DeleteFunc(slices.Clone(s.ClusterNetworkPolicies),
		func(p *cluster.ClusterNetworkPolicy) bool { return p.Tier == tier })
	if dropNP {
		c.Policies = nil
	}
	return &c
}

// TestDecideProperties checks, over random clusters with both tiers, what
// must hold whatever the policies say:
//   - the verdict does not depend on the order of the snapshot's
//     ClusterNetworkPolicies (equal priorities are ordered by name);
//   - a direction decided by an admin rule keeps its answer when the
//     NetworkPolicies and the baseline tier go away;
//   - a direction decided after the admin tier (NetworkPolicy, baseline,
//     default) keeps its answer, and who gave it, when the admin tier goes
//     away: an admin Pass only hands on;
//   - a direction decided by the default keeps it when the baseline goes;
//   - the decision is consistent: a rule exactly when a tier's rule
//     decided, allowed exactly when that rule accepts.
func TestDecideProperties(t *testing.T) {
	const snapshots = 8
	checked, byTier := 0, map[DecidedBy]int{}
	for seed := range uint64(snapshots) {
		rnd := rand.New(rand.NewPCG(seed, 0x71e5))
		s := randomTieredSnapshot(rnd)
		shuffled := *s
		shuffled.ClusterNetworkPolicies = slices.Clone(s.ClusterNetworkPolicies)
		rnd.Shuffle(len(shuffled.ClusterNetworkPolicies), func(i, j int) {
			shuffled.ClusterNetworkPolicies[i], shuffled.ClusterNetworkPolicies[j] = shuffled.ClusterNetworkPolicies[j], shuffled.ClusterNetworkPolicies[i]
		})
		noAdmin := without(s, admin, false)
		adminOnly := without(s, baseline, true)
		noBaseline := without(s, baseline, false)
		eps := endpoints(s)
		for _, from := range eps {
			for _, to := range eps {
				if from.IP.Is4() != to.IP.Is4() {
					continue
				}
				for _, pp := range probePorts {
					checked++
					v := Decide(s, from, to, pp.proto, pp.port)
					what := fmt.Sprintf("seed %d: %s -> %s %v/%d", seed, describe(from), describe(to), pp.proto, pp.port)
					if w := Decide(&shuffled, from, to, pp.proto, pp.port); !reflect.DeepEqual(v, w) {
						t.Fatalf("%s: the order of the ClusterNetworkPolicies changed the verdict:\n%+v\n%+v", what, v, w)
					}
					for dir, d := range map[string]Decision{"egress": v.Egress, "ingress": v.Ingress} {
						byTier[d.By]++
						pick := func(v Verdict) Decision {
							if dir == "egress" {
								return v.Egress
							}
							return v.Ingress
						}
						checkDecision(t, what+" "+dir, d)
						switch d.By {
						case ByAdmin:
							if o := pick(Decide(adminOnly, from, to, pp.proto, pp.port)); o.Allowed != d.Allowed || o.By != ByAdmin {
								t.Fatalf("%s %s: decided by %s, but %s/%v without NetworkPolicies and baseline", what, dir, short(d), short(o), o.Allowed)
							}
						case ByNetworkPolicy, ByBaseline, ByDefault:
							if o := pick(Decide(noAdmin, from, to, pp.proto, pp.port)); o.Allowed != d.Allowed || o.By != d.By {
								t.Fatalf("%s %s: decided by %s, but %s/%v without the admin tier", what, dir, short(d), short(o), o.Allowed)
							}
						}
						if d.By == ByDefault {
							if o := pick(Decide(noBaseline, from, to, pp.proto, pp.port)); !o.Allowed {
								t.Fatalf("%s %s: allowed by default, but denied without the baseline tier (%s)", what, dir, short(o))
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d connections checked; directions decided by %v", checked, byTier)
	for _, by := range []DecidedBy{ByAdmin, ByNetworkPolicy, ByBaseline, ByDefault, BySelf} {
		if byTier[by] < checked/200 {
			t.Errorf("only %d directions decided by %s: the random clusters exercise too little", byTier[by], by)
		}
	}
}

func checkDecision(t *testing.T, what string, d Decision) {
	t.Helper()
	tiered := d.By == ByAdmin || d.By == ByBaseline
	switch {
	case tiered != (d.Rule != nil):
		t.Fatalf("%s: decided by %s with rule %v", what, d.By, d.Rule)
	case tiered && d.Allowed != (d.Rule.Action == accept):
		t.Fatalf("%s: allowed=%v by rule %s", what, d.Allowed, d.Rule)
	case tiered && d.Rule.Tier != cluster.CNPTier(d.By):
		t.Fatalf("%s: decided by %s but the rule is in tier %s", what, d.By, d.Rule.Tier)
	case !tiered && d.By != ByNetworkPolicy && !d.Allowed:
		t.Fatalf("%s: denied by %s", what, d.By)
	case d.Rule != nil && d.Rule.FailClosed != "" && d.Rule.Action != deny:
		t.Fatalf("%s: rule %s failed closed without denying", what, d.Rule)
	}
	for _, p := range d.Passed {
		if p.Action != pass {
			t.Fatalf("%s: passed by a rule that is no Pass: %s", what, p)
		}
	}
	if len(d.Passed) > 2 {
		t.Fatalf("%s: passed %d times; each tier passes at most once", what, len(d.Passed))
	}
}
