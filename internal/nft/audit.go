package nft

import (
	"net/netip"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Audit mode. Policies in audit mode are left out of the enforcing plan; a
// second plan enforces them too, and for the pods whose decision differs
// between the two the table logs what that second plan would deny:
//
//	audit:          type filter hook forward priority filter - 4; policy accept;
//	                ct state established,related accept
//	                icmpv6 type 133-136 accept
//	                jump audit-egress
//	                jump audit-ingress
//	audit-egress:   ip saddr vmap @audit-egress-pods-v4  (pod -> goto audit-egress-<id>) ...
//	audit-ingress:  ip saddr @node-addrs-v4 return ... ip daddr vmap @audit-ingress-pods-v4 ...
//	audit-egress-<id>: the profile's chain, allowing with return and
//	                denying with goto would-deny-egress, which logs (rate
//	                limited) and returns.
//
// The audit base chain runs after the enforcing one (priority -5) and sees
// only what it accepted, so only allowed new connections are judged, and
// nothing the audit chains do can drop a packet. Without policies in audit
// mode none of this exists: allowed traffic costs nothing more.

const (
	auditPrefix       = "audit-"
	chainAudit        = "audit"
	chainAuditEgress  = "audit-egress"
	chainAuditIngress = "audit-ingress"

	setAuditEgressPods4  = "audit-egress-pods-v4"
	setAuditEgressPods6  = "audit-egress-pods-v6"
	setAuditIngressPods4 = "audit-ingress-pods-v4"
	setAuditIngressPods6 = "audit-ingress-pods-v6"

	// AuditPriority runs the audit chain right after the enforcing one.
	AuditPriority = ForwardPriority + 1
)

// WouldDenyChain names the chain that logs what audit policies would deny
// on side.
func WouldDenyChain(side droplog.Side) string { return "would-deny-" + string(side) }

// wouldDeny ends every path of an audit chain that audit policies deny.
func (r *Renderer) wouldDeny(side droplog.Side) stmt {
	if r.DropLog.Off {
		return ret // nothing is logged: an audit chain only returns
	}
	return verdict(expr.VerdictGoto, WouldDenyChain(side))
}

// addAudit adds the audit chains and maps for the pods whose profile in
// audit differs from the one in pl.
func (r *Renderer) addAudit(t *Table, pl, audit *plan.Plan) {
	if audit == nil {
		return
	}
	enforced := map[string]plan.LocalPod{}
	for _, p := range pl.Pods {
		enforced[p.Key()] = p
	}
	maps := map[string]*Set{}
	for _, name := range []string{setAuditEgressPods4, setAuditEgressPods6, setAuditIngressPods4, setAuditIngressPods6} {
		typ := PodMap4
		if name == setAuditEgressPods6 || name == setAuditIngressPods6 {
			typ = PodMap6
		}
		maps[name] = &Set{Name: name, Type: typ}
		t.AddSet(maps[name])
	}
	used := map[plan.ProfileID]bool{}
	// A map holds one element per key: the first pod holding an address
	// wins, as in addPodMaps.
	seen := map[string]map[netip.Addr]bool{}
	for _, p := range audit.Pods {
		was := enforced[p.Key()]
		for _, d := range []struct {
			id, was    plan.ProfileID
			dir        plan.Direction
			set4, set6 string
		}{
			{p.Egress, was.Egress, plan.Egress, setAuditEgressPods4, setAuditEgressPods6},
			{p.Ingress, was.Ingress, plan.Ingress, setAuditIngressPods4, setAuditIngressPods6},
		} {
			if d.id == "" || d.id == d.was {
				continue // the same decision: nothing to log
			}
			used[d.id] = true
			v := Verdict{Kind: expr.VerdictGoto, Chain: auditPrefix + profileChain(d.dir, d.id)}
			for _, ip := range p.IPs {
				name := d.set4
				if ip.Is6() {
					name = d.set6
				}
				if seen[name] == nil {
					seen[name] = map[netip.Addr]bool{}
				}
				if seen[name][ip] {
					continue
				}
				seen[name][ip] = true
				maps[name].Elems = append(maps[name].Elems, Elem{Key: ip.AsSlice(), Verdict: &v, Comment: shortComment(p.Key())})
			}
		}
	}
	for _, s := range maps {
		SortElems(s.Elems)
	}
	for _, prof := range audit.Profiles {
		if used[prof.ID] {
			r.addProfile(t, prof, true)
		}
	}
	for _, c := range r.auditChains() {
		t.AddChain(c)
	}
}

// auditChains are the fixed chains of audit mode.
func (r *Renderer) auditChains() []*Chain {
	out := []*Chain{
		{
			Name: chainAudit,
			Hook: &Hook{Hook: HookForward, Priority: AuditPriority, Policy: "accept"},
			Rules: []Rule{
				rule(ctEstablishedRelated(), accept),
				rule(icmpv6NeighbourDiscovery(), accept),
				rule(jump(chainAuditEgress)),
				rule(jump(chainAuditIngress)),
			},
		},
		{Name: chainAuditEgress, Rules: []Rule{
			rule(ipSaddr.vmap(setAuditEgressPods4)),
			rule(ip6Saddr.vmap(setAuditEgressPods6)),
		}},
		// The node may always reach its pods, as in the ingress chain.
		{Name: chainAuditIngress, Rules: []Rule{
			rule(ipSaddr.inSet(setNodeAddrs4), ret),
			rule(ip6Saddr.inSet(setNodeAddrs6), ret),
			rule(ipDaddr.vmap(setAuditIngressPods4)),
			rule(ip6Daddr.vmap(setAuditIngressPods6)),
		}},
	}
	if r.DropLog.Off {
		return out
	}
	l := r.DropLog.Defaults()
	for _, side := range []droplog.Side{droplog.SideEgress, droplog.SideIngress} {
		out = append(out, &Chain{Name: WouldDenyChain(side), Rules: []Rule{
			rule(limitOver(l.Rate, l.Burst), counter(), ret),
			rule(nflog(droplog.Prefix(side, true), l.Group)),
		}})
	}
	return out
}
