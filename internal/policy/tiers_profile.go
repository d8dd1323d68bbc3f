package policy

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// tierSel is what the ClusterNetworkPolicy tiers add to one direction of a
// pod's profile: the rules applying to it in order, whether a NetworkPolicy
// isolates it, and how its own named ports resolve the ingress rules'
// destinationNamedPort.
type tierSel struct {
	admin, baseline []*cnpRule
	notIsolated     bool
	named           map[string][]plan.PortRange // ingress only
}

// selectTiers returns the rules of the ClusterNetworkPolicies selecting the
// pod in one direction, or nil when none has a rule there. Baseline rules
// are left out when a NetworkPolicy isolates the pod: they are never
// reached.
func (c *compiler) selectTiers(lp *localPod, egress bool) *tierSel {
	ts := &tierSel{notIsolated: len(lp.ingress) == 0}
	if egress {
		ts.notIsolated = len(lp.egress) == 0
	}
	for _, p := range c.cnps {
		cp := c.compiledCNP(p)
		if !c.cnpSelects(cp, lp.pod) {
			continue
		}
		rules := cp.ingress
		if egress {
			rules = cp.egress
		}
		switch {
		case cp.admin:
			ts.admin = append(ts.admin, rules...)
		case ts.notIsolated:
			ts.baseline = append(ts.baseline, rules...)
		}
	}
	if len(ts.admin)+len(ts.baseline) == 0 {
		return nil
	}
	if !egress {
		ts.named = resolveCNPNames(lp.pod, ts.admin, ts.baseline)
	}
	return ts
}

// resolveCNPNames resolves the named ports of ingress rules against the
// pod's own container ports: a name means every protocol and number a
// container port of that name declares.
func resolveCNPNames(pod *cluster.Pod, lists ...[]*cnpRule) map[string][]plan.PortRange {
	var out map[string][]plan.PortRange
	for _, rules := range lists {
		for _, r := range rules {
			for _, name := range r.names {
				if _, done := out[name]; done {
					continue
				}
				if out == nil {
					out = map[string][]plan.PortRange{}
				}
				var rs []plan.PortRange
				for _, d := range declaredNames(pod) {
					if d.name == name {
						rs = append(rs, plan.PortRange{Protocol: d.proto, First: d.port, Last: d.port})
					}
				}
				out[name] = normalizePorts(rs)
			}
		}
	}
	return out
}

// rules returns the admin then the baseline rules.
func (ts *tierSel) rules() []*cnpRule {
	if ts == nil {
		return nil
	}
	return slices.Concat(ts.admin, ts.baseline)
}

// canonical is what the tiers add to a profile's ID: the rules in order, the
// isolation and the named-port resolution; "" without tiers, so profiles of
// pods no ClusterNetworkPolicy selects keep the IDs they always had.
func (ts *tierSel) canonical() string {
	if ts == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("\x00\x00tiers")
	for _, r := range ts.admin {
		b.WriteString("\x00a" + r.id)
	}
	for _, r := range ts.baseline {
		b.WriteString("\x00b" + r.id)
	}
	if ts.notIsolated {
		b.WriteString("\x00open")
	}
	for _, name := range slices.Sorted(maps.Keys(ts.named)) {
		b.WriteString("\x00n" + name + "=")
		for _, r := range ts.named[name] {
			fmt.Fprintf(&b, "%d/%d-%d,", r.Protocol, r.First, r.Last)
		}
	}
	return b.String()
}

// addTiers fills the tier part of a profile being built.
func (c *compiler) addTiers(p *plan.Profile, dir plan.Direction, ts *tierSel) {
	if ts == nil {
		return
	}
	p.NotIsolated = ts.notIsolated
	for _, r := range ts.admin {
		p.Admin = append(p.Admin, c.tierRule(r, dir, ts))
	}
	for _, r := range ts.baseline {
		p.Baseline = append(p.Baseline, c.tierRule(r, dir, ts))
	}
}

// tierRule builds the plan's form of one rule for one profile.
func (c *compiler) tierRule(r *cnpRule, dir plan.Direction, ts *tierSel) *plan.TierRule {
	tr := &plan.TierRule{ID: r.id, Policy: r.policy, Priority: r.priority, Field: r.field, Action: r.action}
	c.dep(r.peerSet)
	peers := c.sets.planSet(r.peerSet)
	if r.allPorts {
		tr.Matches = []plan.TierMatch{{Key: r.id, Peers: peers}}
		return tr
	}
	if len(r.ports) > 0 {
		tr.Matches = append(tr.Matches, plan.TierMatch{Key: r.id, Peers: peers, Ports: normalizePorts(slices.Clone(r.ports))})
	}
	if len(r.names) == 0 {
		return tr
	}
	if dir == plan.Ingress {
		var rs []plan.PortRange
		for _, name := range r.names {
			rs = append(rs, ts.named[name]...)
		}
		if rs = normalizePorts(rs); len(rs) > 0 {
			tr.Matches = append(tr.Matches, plan.TierMatch{Key: r.id, Peers: peers, Ports: rs, Local: true})
		}
		return tr
	}
	return c.egressNamedMatches(tr, r)
}

// egressNamedMatches adds, for each protocol and number a destination pod
// among the rule's peers serves one of its named ports on, the match of
// those pods' addresses on that port.
func (c *compiler) egressNamedMatches(tr *plan.TierRule, r *cnpRule) *plan.TierRule {
	perPort := map[plan.PortRange][]setID{}
	for _, name := range r.names {
		for _, proto := range []plan.Protocol{plan.TCP, plan.UDP, plan.SCTP} {
			for _, p := range r.peers {
				for num, set := range c.namedFor(p, portName{name, proto}) {
					k := plan.PortRange{Protocol: proto, First: num, Last: num}
					perPort[k] = append(perPort[k], set)
				}
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(perPort), comparePortRanges)
	for _, k := range keys {
		u := c.sets.union(perPort[k])
		c.dep(u)
		if c.sets.get(u).IsEmpty() {
			continue
		}
		tr.Matches = append(tr.Matches, plan.TierMatch{
			Key:   fmt.Sprintf("%s-%s-%d", r.id, strings.ToLower(k.Protocol.String()), k.First),
			Peers: c.sets.planSet(u), Ports: []plan.PortRange{k},
		})
	}
	return tr
}

// dep records that the profile being built read a set.
func (c *compiler) dep(id setID) {
	if c.deps != nil {
		c.deps.inputs = append(c.deps.inputs, id)
	}
}

func comparePortRanges(a, b plan.PortRange) int {
	return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
}

// normalizePorts sorts ranges and merges those that overlap or touch: an
// interval set refuses overlapping elements.
func normalizePorts(rs []plan.PortRange) []plan.PortRange {
	slices.SortFunc(rs, comparePortRanges)
	var out []plan.PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Protocol == r.Protocol && int(out[n-1].Last)+1 >= int(r.First) {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}
