package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// This file compiles ClusterNetworkPolicies (the admin and baseline tiers)
// into rules the profiles carry. docs/policy-semantics.md says what each
// tier means; plan.Profile.Decide how the dataplane combines them.

// compiledCNP is one ClusterNetworkPolicy reduced to what profiles are built
// from, compiled once per object.
type compiledCNP struct {
	object          *cluster.ClusterNetworkPolicy
	admin           bool
	nsSel, podSel   labels.Selector // the subject; nil nsSel: it selects nobody
	ingress, egress []*cnpRule      // fail-closed Accept rules left out
	problems        []plan.Problem
}

// cnpRule is one rule of a ClusterNetworkPolicy.
type cnpRule struct {
	id, field string
	policy    string
	priority  int32
	action    plan.Action
	// denyAll marks a rule that could not be compiled: it denies
	// everything, whatever it said.
	denyAll  bool
	peers    []*peer // the selector peers, for named ports
	peerSet  setID
	allPorts bool
	ports    []plan.PortRange // numeric ports
	names    []string         // destinationNamedPort
}

// sortCNPs orders policies as the tiers evaluate them: by priority, equal
// priorities by name.
func sortCNPs(ps []*cluster.ClusterNetworkPolicy) {
	slices.SortStableFunc(ps, compareCNPs)
}

func compareCNPs(a, b *cluster.ClusterNetworkPolicy) int {
	return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Name, b.Name))
}

func (c *compiler) cnpProblem(name string, path *field.Path, msg string) {
	c.problems = append(c.problems, plan.Problem{Kind: plan.KindClusterNetworkPolicy, Policy: name, Field: path.String(), Message: msg})
}

// compiledCNP returns the policy compiled, compiling each object once.
func (c *compiler) compiledCNP(p *cluster.ClusterNetworkPolicy) *compiledCNP {
	if cp := c.byCNP[p.Name]; cp != nil && cp.object == p {
		return cp
	}
	cp := c.compileCNP(p)
	c.byCNP[p.Name] = cp
	return cp
}

func (c *compiler) compileCNP(p *cluster.ClusterNetworkPolicy) *compiledCNP {
	cp := &compiledCNP{object: p}
	outer := c.problems
	c.problems = nil
	defer func() { cp.problems, c.problems = c.problems, outer }()
	spec := field.NewPath("spec")
	switch p.Tier {
	case cluster.TierAdmin:
		cp.admin = true
	case cluster.TierBaseline:
	default:
		c.cnpProblem(p.Name, spec.Child("tier"), fmt.Sprintf("unsupported value %q, expected \"Admin\" or \"Baseline\"; policy skipped", p.Tier))
		return cp
	}
	c.cnpPriority = p.Priority
	cp.nsSel, cp.podSel = c.cnpSubject(p.Name, spec.Child("subject"), p.Subject)
	if cp.nsSel == nil {
		return cp
	}
	for i, r := range p.Ingress {
		if cr := c.compileCNPRule(p.Name, false, i, r); cr != nil {
			cp.ingress = append(cp.ingress, cr)
		}
	}
	for i, r := range p.Egress {
		if cr := c.compileCNPRule(p.Name, true, i, r); cr != nil {
			cp.egress = append(cp.egress, cr)
		}
	}
	return cp
}

// cnpSubject converts the subject; a subject that cannot be read selects
// nobody (nil selectors), which leaves every pod as it was without it.
func (c *compiler) cnpSubject(name string, path *field.Path, s cluster.CNPSubject) (ns, pods labels.Selector) {
	if (s.Namespaces == nil) == (s.Pods == nil) {
		c.cnpProblem(name, path, "must specify exactly one of namespaces, pods; policy selects nothing")
		return nil, nil
	}
	nsLS, podLS := s.Namespaces, (*metav1.LabelSelector)(nil)
	if s.Pods != nil {
		nsLS, podLS = &s.Pods.NamespaceSelector, &s.Pods.PodSelector
	}
	ns, err := c.selector(nsLS)
	if err == nil {
		pods = labels.Everything()
		if podLS != nil {
			pods, err = c.selector(podLS)
		}
	}
	if err != nil {
		c.cnpProblem(name, path, "invalid selector, policy selects nothing: "+err.Error())
		return nil, nil
	}
	return ns, pods
}

// cnpSelects reports whether the subject of a compiled policy selects a
// local (enforceable) pod.
func (c *compiler) cnpSelects(cp *compiledCNP, pod *cluster.Pod) bool {
	return cp.nsSel != nil && cp.nsSel.Matches(c.nsLabels[podNamespace(pod)]) && cp.podSel.Matches(pod.Labels)
}

// cnpRuleID names a rule's sets: 10 hex digits of the SHA-256 of the
// policy's name (names run to 253 bytes, nftables names to 256 with the
// suffixes), the direction and the index.
func cnpRuleID(name string, egress bool, i int) string {
	sum := sha256.Sum256([]byte(name))
	d := "i"
	if egress {
		d = "e"
	}
	return fmt.Sprintf("%s-%s%d", hex.EncodeToString(sum[:5]), d, i)
}

// compileCNPRule compiles one rule. A rule any part of which cannot be read
// fails closed as a whole: an Accept rule is left out (nil), any other
// denies everything.
func (c *compiler) compileCNPRule(name string, egress bool, i int, r cluster.CNPRule) *cnpRule {
	path := field.NewPath("spec", "ingress").Index(i)
	if egress {
		path = field.NewPath("spec", "egress").Index(i)
	}
	cr := &cnpRule{id: cnpRuleID(name, egress, i), field: path.String(), policy: name, priority: c.cnpPriority}
	switch r.Action {
	case cluster.ActionAccept:
		cr.action = plan.Accept
	case cluster.ActionDeny:
		cr.action = plan.Deny
	case cluster.ActionPass:
		cr.action = plan.Pass
	default:
		c.cnpProblem(name, path.Child("action"), fmt.Sprintf("unsupported value %q, expected Accept, Deny or Pass; the rule denies everything", r.Action))
		return c.failClosed(cr)
	}
	where, msg := c.cnpRuleParts(cr, egress, path, r)
	if msg == "" {
		return cr
	}
	if cr.action == plan.Accept {
		c.cnpProblem(name, where, msg+"; the Accept rule is ignored")
		return nil
	}
	c.cnpProblem(name, where, msg+"; the rule denies everything")
	return c.failClosed(cr)
}

func (c *compiler) failClosed(cr *cnpRule) *cnpRule {
	*cr = cnpRule{id: cr.id, field: cr.field, policy: cr.policy, priority: cr.priority, action: plan.Deny, denyAll: true, allPorts: true, peerSet: c.allAddrs()}
	return cr
}

// cnpRuleParts compiles the peers and protocols of a rule, returning the
// field and reason of the first part that cannot be read.
func (c *compiler) cnpRuleParts(cr *cnpRule, egress bool, path *field.Path, r cluster.CNPRule) (*field.Path, string) {
	peersPath := path.Child("from")
	if egress {
		peersPath = path.Child("to")
	}
	if len(r.Peers) == 0 {
		return peersPath, "no peers"
	}
	var sets []setID
	addressPeers := false
	for j, p := range r.Peers {
		id, pr, where, msg := c.cnpPeer(egress, peersPath.Index(j), p)
		if msg != "" {
			return where, msg
		}
		sets = append(sets, id)
		if pr != nil {
			cr.peers = append(cr.peers, pr)
		}
		addressPeers = addressPeers || p.Nodes != nil || p.Networks != nil
	}
	cr.peerSet = c.sets.union(sets)
	cr.allPorts = len(r.Protocols) == 0
	for k, proto := range r.Protocols {
		pp := path.Child("protocols").Index(k)
		if where, msg := c.cnpProtocol(cr, pp, proto); msg != "" {
			return where, msg
		}
		if proto.DestinationNamedPort != "" && addressPeers {
			return pp.Child("destinationNamedPort"), "not allowed with nodes or networks peers"
		}
	}
	return nil, ""
}

// cnpPeer compiles one peer into its set (and, for a selector peer, the
// peer the named ports resolve against).
func (c *compiler) cnpPeer(egress bool, path *field.Path, p cluster.CNPPeer) (setID, *peer, *field.Path, string) {
	n := 0
	for _, set := range []bool{p.Namespaces != nil, p.Pods != nil, p.Nodes != nil, p.Networks != nil, p.DomainNames != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return 0, nil, path, "empty peer (a field this version of kube-fence does not know?)"
	case n > 1:
		return 0, nil, path, "more than one of namespaces, pods, nodes, networks, domainNames"
	case p.DomainNames != nil:
		return 0, nil, path.Child("domainNames"), "not enforced by kube-fence"
	case !egress && (p.Nodes != nil || p.Networks != nil):
		return 0, nil, path, "nodes and networks are egress peers only"
	case p.Networks != nil:
		return c.cnpNetworks(path.Child("networks"), p.Networks)
	case p.Nodes != nil:
		sel, err := c.selector(p.Nodes)
		if err != nil {
			return 0, nil, path.Child("nodes"), "invalid selector: " + err.Error()
		}
		var b addrset.Builder
		for _, node := range c.nodeObjs {
			if node != nil && sel.Matches(node.Labels) {
				for _, a := range node.Addresses {
					if a.IsValid() {
						b.AddAddr(a.WithZone(""))
					}
				}
			}
		}
		return c.sets.intern(addrset.SpansOf(b.Set())), nil, nil, ""
	}
	nsLS, podLS, sub := p.Namespaces, (*metav1.LabelSelector)(nil), path.Child("namespaces")
	if p.Pods != nil {
		nsLS, podLS, sub = &p.Pods.NamespaceSelector, &p.Pods.PodSelector, path.Child("pods")
	}
	for _, ls := range []*metav1.LabelSelector{nsLS, podLS} {
		if ls == nil {
			continue
		}
		if _, err := c.selector(ls); err != nil {
			return 0, nil, sub, "invalid selector: " + err.Error()
		}
	}
	pr, _ := c.selectorPeer("", "", sub, podLS, nsLS)
	return pr.id, pr, nil, ""
}

func (c *compiler) cnpNetworks(path *field.Path, nets []string) (setID, *peer, *field.Path, string) {
	if len(nets) == 0 {
		return 0, nil, path, "empty"
	}
	var b addrset.Builder
	for k, n := range nets {
		pfx, err := netip.ParsePrefix(n)
		if err != nil || pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			return 0, nil, path.Index(k), fmt.Sprintf("%q is not a CIDR", n)
		}
		b.AddPrefix(pfx.Masked())
	}
	return c.sets.intern(addrset.SpansOf(b.Set())), nil, nil, ""
}

// cnpProtocol compiles one protocols entry.
func (c *compiler) cnpProtocol(cr *cnpRule, path *field.Path, p cluster.CNPProtocol) (*field.Path, string) {
	type entry struct {
		proto plan.Protocol
		ports *cluster.CNPPorts
		name  string
	}
	var set []entry
	if p.TCP != nil {
		set = append(set, entry{plan.TCP, p.TCP, "tcp"})
	}
	if p.UDP != nil {
		set = append(set, entry{plan.UDP, p.UDP, "udp"})
	}
	if p.SCTP != nil {
		set = append(set, entry{plan.SCTP, p.SCTP, "sctp"})
	}
	if n := len(set) + min(len(p.DestinationNamedPort), 1); n != 1 {
		return path, "must specify exactly one of tcp, udp, sctp, destinationNamedPort"
	}
	if p.DestinationNamedPort != "" {
		if !slices.Contains(cr.names, p.DestinationNamedPort) {
			cr.names = append(cr.names, p.DestinationNamedPort)
		}
		return nil, ""
	}
	e := set[0]
	r := plan.PortRange{Protocol: e.proto, First: 0, Last: 65535}
	dp := e.ports.DestinationPort
	where := path.Child(e.name, "destinationPort")
	valid := func(n int32) bool { return n >= 1 && n <= 65535 }
	switch {
	case dp == nil:
	case dp.Range != nil && dp.Number != 0:
		return where, "must specify exactly one of number, range"
	case dp.Range != nil:
		if !valid(dp.Range.Start) || !valid(dp.Range.End) || dp.Range.Start >= dp.Range.End {
			return where.Child("range"), "start must be below end, both between 1 and 65535"
		}
		r.First, r.Last = uint16(dp.Range.Start), uint16(dp.Range.End)
	case !valid(dp.Number):
		return where, "must specify a number between 1 and 65535 or a range"
	default:
		r.First, r.Last = uint16(dp.Number), uint16(dp.Number)
	}
	cr.ports = append(cr.ports, r)
	return nil, ""
}
