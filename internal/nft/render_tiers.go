package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// The ClusterNetworkPolicy tiers. A tiered profile's chain runs the admin
// rules first, each rule one pair of rules per alternative (IPv4, IPv6; a
// family the alternative has no address of has no rule),
// then the rest of the decision:
//
//	ingress-<id>:        ip saddr @cnp-<rule>-v4 [meta l4proto . th dport @cnp-<rule>-ports] accept|drop|goto ingress-<id>-pass
//	                     ip6 saddr @cnp-<rule>-v6 ...          (one pair per admin rule alternative)
//	                     <the rest>, or goto ingress-<id>-pass when a rule passes
//	ingress-<id>-pass:   <the rest>
//
// The rest is the NetworkPolicy part when a NetworkPolicy isolates the pods
// (egress profiles first let the node's own addresses through: the input
// hook sends a pod's traffic to its node here too), otherwise the baseline
// rules (Pass allows) and the default, allow. A rule's address and port sets
// are named by the rule and shared by every profile it applies to, except
// the ports of an ingress rule's destinationNamedPort, which resolve against
// the profile's own pods. A packet costs one lookup per admin alternative
// that applies to its pod, whatever the number of policies in the cluster.

// Names of what the tiers add to the fixed part of the table.
const (
	chainInput     = "input"
	setInputPods4  = "input-pods-v4"
	setInputPods6  = "input-pods-v6"
	tierSetsPrefix = "cnp-"
)

// addTiered adds a profile with ClusterNetworkPolicy rules.
func (b *profileBuilder) addTiered(p *plan.Profile) {
	_, _, allow, _ := b.peerFields()
	passChain := b.name + "-pass"
	passes := false
	var main []Rule
	for _, r := range p.Admin {
		v := allow
		switch r.Action {
		case plan.Deny:
			v = b.deny()
		case plan.Pass:
			v, passes = verdict(expr.VerdictGoto, passChain), true
		}
		main = append(main, b.tierRules(r, "admin", v)...)
	}
	var rest []Rule
	if p.NotIsolated {
		for _, r := range p.Baseline {
			v := allow
			if r.Action == plan.Deny {
				v = b.deny()
			}
			rest = append(rest, b.tierRules(r, "baseline", v)...)
		}
		rest = append(rest, rule(allow))
	} else {
		if b.dir == plan.Egress {
			// The node's addresses change without the profile: both
			// families' rules stay, whatever the sets hold. Not through
			// matchSets, which would add the sets: these are the fixed
			// node-addrs sets the table already holds.
			rest = append(rest, rule(ipDaddr.inSet(setNodeAddrs4), ret), rule(ip6Daddr.inSet(setNodeAddrs6), ret))
		}
		np := b.npRules(p)
		if len(p.Policies) > 0 {
			np[0] = np[0].withComment(strings.Join(p.Policies, " "))
		}
		rest = append(rest, np...)
	}
	if passes {
		b.addChain(&Chain{Name: passChain, Rules: rest})
		main = append(main, rule(verdict(expr.VerdictGoto, passChain)))
	} else {
		main = append(main, rest...)
	}
	b.addChain(&Chain{Name: b.name, Rules: main})
}

// tierRules returns the rules of one ClusterNetworkPolicy rule, ending in
// v, and adds its sets (matchSets does).
func (b *profileBuilder) tierRules(r *plan.TierRule, tier string, v stmt) []Rule {
	var out []Rule
	for _, m := range r.Matches {
		set4, set6 := tierSetsPrefix+m.Key+"-v4", tierSetsPrefix+m.Key+"-v6"
		then := v
		if m.Ports != nil {
			ports := tierSetsPrefix + m.Key + "-ports"
			if m.Local {
				ports = b.name + "-" + m.Key + "-ports"
			}
			s := &Set{Name: ports, Type: PortSet}
			for _, pr := range m.Ports {
				s.Elems = append(s.Elems, Elem{Key: portKey(pr.Protocol, pr.First), KeyEnd: portKey(pr.Protocol, pr.Last)})
			}
			SortElems(s.Elems)
			b.addSet(s)
			then = seq(protoPortInSet(ports), v)
		}
		out = append(out, b.matchSets(set4, set6, m.Peers, then)...)
	}
	if len(out) > 0 {
		out[0] = out[0].withComment(fmt.Sprintf("%s %s %s %s", tier, r.Policy, r.Field, r.Action))
	}
	return out
}

// protoPortInSet matches when `meta l4proto . th dport` is in the set.
func protoPortInSet(set string) stmt {
	s := protoPortVmap(set)
	s.exprs[len(s.exprs)-1] = &expr.Lookup{SourceRegister: 1, SetName: set}
	s.text = fmt.Sprintf("meta l4proto . th dport @%s", set)
	return s
}

// inputChain sends the traffic of pods with a tiered egress profile to
// their node's own addresses, which never crosses the forward hook,
// through that profile: an admin or baseline rule may deny a pod its node
// (its nodes and networks peers say so), while NetworkPolicy never does.
// It exists only while such a pod does, so a table without
// ClusterNetworkPolicies is exactly what it was before them.
func inputChain() *Chain {
	return &Chain{
		Name: chainInput,
		Hook: &Hook{Hook: HookInput, Priority: ForwardPriority, Policy: "accept"},
		Rules: []Rule{
			rule(ctEstablishedRelated(), accept),
			rule(icmpv6NeighbourDiscovery(), accept),
			rule(ipSaddr.vmap(setInputPods4)),
			rule(ip6Saddr.vmap(setInputPods6)),
		},
	}
}
