package conformance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// MixedDimensions are the dimensions of the mixed cases (GenerateMixed)
// beyond the NetworkPolicy generator's, with every value each can take.
var MixedDimensions = map[string][]string{
	"cnp-tiers":   {"admin", "baseline", "both"},
	"cnp-subject": {"namespaces", "pods"},
	"cnp-action":  {"Accept", "Deny", "Pass"},
	"cnp-peer":    {"namespaces", "pods", "networks"},
	"cnp-port":    {"every", "number", "range", "named"},
	"cnp-order":   {"one", "priorities"},
	"with-np":     {"0", "1", "2"},
	"mix-action":  {"none", "relabel-pod", "relabel-namespace", "create-pod", "delete-cnp", "reprioritize-cnp", "delete-policy", "enforce-audit-cnp"},
	"cnp-mode":    {"enforced", "audit"},
}

// GenerateMixed returns n distinct cases mixing ClusterNetworkPolicies of
// both tiers with NetworkPolicies, deterministic from seed and base. The
// policies of one tier have distinct priorities, so their order, which
// decides, is the one the priorities say; an action may swap two of them.
// Every probe is judged against the reference evaluator (policy.Decide).
func GenerateMixed(seed uint64, base *cluster.Snapshot, n int) []Generated {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x6d69786564)), base: &State{Snap: base}}
	var out []Generated
	seen := map[string]bool{}
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		c := g.mixed(len(out) + 1)
		if key := canonical(c); !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	return out
}

func (g *generator) mixed(id int) Generated {
	g.tags = map[string]bool{}
	c := Generated{ID: id, prefix: "mix"}
	nps := pickOf(g, 0, 1, 1, 2)
	g.tag("with-np", fmt.Sprint(nps))
	for i := range nps {
		c.Policies = append(c.Policies, g.policy(fmt.Sprintf("mix-%d-np%d", id, i+1), pickOf(g, Namespaces...)))
	}
	tiers := pickOf(g, "admin", "baseline", "both", "both")
	g.tag("cnp-tiers", tiers)
	count := pickOf(g, 1, 2, 2, 3)
	prios := g.rng.Perm(20)
	for i := range count {
		tier := cluster.TierAdmin
		switch {
		case tiers == "baseline", tiers == "both" && i%2 == 1:
			tier = cluster.TierBaseline
		}
		c.CNPs = append(c.CNPs, g.cnp(fmt.Sprintf("mix-%d-cnp%d", id, i+1), tier, int32(prios[i])))
	}
	g.tag("cnp-order", map[bool]string{true: "one", false: "priorities"}[count == 1])
	c.Action = g.mixedAction(c)
	g.auditMixed(&c)
	for t := range g.tags {
		c.Tags = append(c.Tags, t)
	}
	slices.Sort(c.Tags)
	return c
}

func (g *generator) cnp(name string, tier cluster.CNPTier, prio int32) *cluster.ClusterNetworkPolicy {
	p := &cluster.ClusterNetworkPolicy{Name: name, Tier: tier, Priority: prio}
	if g.pick(2) == 0 {
		g.tag("cnp-subject", "namespaces")
		p.Subject.Namespaces = ptr(g.cnpNamespaces())
	} else {
		g.tag("cnp-subject", "pods")
		p.Subject.Pods = &cluster.CNPPods{NamespaceSelector: g.cnpNamespaces(), PodSelector: g.cnpPods()}
	}
	dir := pickOf(g, "ingress", "egress", "both")
	if dir != "egress" {
		for range pickOf(g, 1, 1, 2, 3) {
			p.Ingress = append(p.Ingress, g.cnpRule(false))
		}
	}
	if dir != "ingress" {
		for range pickOf(g, 1, 1, 2, 3) {
			p.Egress = append(p.Egress, g.cnpRule(true))
		}
	}
	return p
}

func ptr[T any](v T) *T { return &v }

func (g *generator) cnpNamespaces() metav1.LabelSelector {
	switch g.pick(4) {
	case 0:
		return Labels()
	case 1:
		return Expr(NamespaceLabel, metav1.LabelSelectorOpNotIn, pickOf(g, Namespaces...))
	}
	return Labels(NamespaceLabel, pickOf(g, Namespaces...))
}

func (g *generator) cnpPods() metav1.LabelSelector {
	switch g.pick(4) {
	case 0:
		return Labels()
	case 1:
		return Expr(PodLabel, metav1.LabelSelectorOpIn, pickOf(g, PodNames...), pickOf(g, PodNames...))
	}
	return Labels(PodLabel, pickOf(g, PodNames...))
}

func (g *generator) cnpRule(egress bool) cluster.CNPRule {
	action := pickOf(g, cluster.ActionAccept, cluster.ActionDeny, cluster.ActionDeny, cluster.ActionPass)
	g.tag("cnp-action", string(action))
	r := cluster.CNPRule{Action: action}
	named := false
	for range pickOf(g, 1, 1, 2) {
		kinds := []string{"namespaces", "pods"}
		if egress {
			kinds = append(kinds, "networks")
		}
		kind := pickOf(g, kinds...)
		g.tag("cnp-peer", kind)
		switch kind {
		case "namespaces":
			r.Peers = append(r.Peers, cluster.CNPPeer{Namespaces: ptr(g.cnpNamespaces())})
		case "pods":
			r.Peers = append(r.Peers, cluster.CNPPeer{Pods: &cluster.CNPPods{NamespaceSelector: g.cnpNamespaces(), PodSelector: g.cnpPods()}})
		default:
			r.Peers = append(r.Peers, cluster.CNPPeer{Networks: g.networks()})
			named = true // a named port is not allowed beside networks
		}
	}
	kind := pickOf(g, "every", "number", "number", "range", "named")
	if named && kind == "named" {
		kind = "number"
	}
	g.tag("cnp-port", kind)
	for range map[string]int{"every": 0}[kind] + map[bool]int{true: 0, false: pickOf(g, 1, 1, 2)}[kind == "every"] {
		r.Protocols = append(r.Protocols, g.cnpProtocol(kind))
	}
	return r
}

// networks are CIDRs around the pods' real addresses, either family.
func (g *generator) networks() []string {
	var out []string
	for range pickOf(g, 1, 1, 2) {
		ips := g.base.IPs(pickOf(g, g.base.PodKeys()...))
		a := ips[g.pick(len(ips))]
		bits := pickOf(g, a.BitLen(), a.BitLen(), a.BitLen()-4, a.BitLen()/2)
		out = append(out, netip.PrefixFrom(a, bits).Masked().String())
	}
	return out
}

func (g *generator) cnpProtocol(kind string) cluster.CNPProtocol {
	proto := pickOf(g, Protocols...)
	num := pickOf(g, PortNumbers...)
	if kind == "named" {
		return cluster.CNPProtocol{DestinationNamedPort: PortName(num, proto)}
	}
	port := &cluster.CNPPort{Number: num}
	if kind == "range" {
		r := pickOf(g, [2]int32{80, 81}, [2]int32{81, 90}, [2]int32{1, 80}, [2]int32{70, 79})
		port = &cluster.CNPPort{Range: &cluster.CNPPortRange{Start: r[0], End: r[1]}}
	}
	ports := &cluster.CNPPorts{DestinationPort: port}
	switch proto {
	case corev1.ProtocolUDP:
		return cluster.CNPProtocol{UDP: ports}
	case corev1.ProtocolSCTP:
		return cluster.CNPProtocol{SCTP: ports}
	}
	return cluster.CNPProtocol{TCP: ports}
}

func (g *generator) mixedAction(c Generated) *Action {
	kinds := []string{"none", "none", "relabel-pod", "relabel-namespace", "create-pod", "delete-cnp"}
	if len(c.CNPs) > 1 {
		kinds = append(kinds, "reprioritize-cnp", "reprioritize-cnp")
	}
	if len(c.Policies) > 0 {
		kinds = append(kinds, "delete-policy")
	}
	kind := pickOf(g, kinds...)
	g.tag("mix-action", kind)
	switch kind {
	case "relabel-pod":
		key, value := pickOf(g, g.base.PodKeys()...), pickOf(g, "a", "b", "c", "d")
		return &Action{Describe: fmt.Sprintf("label pod %s %s=%s", key, PodLabel, value),
			Change: func(s *State) error { return s.LabelPod(key, PodLabel, value) }}
	case "relabel-namespace":
		ns, value := pickOf(g, Namespaces...), pickOf(g, "x", "y", "z", "w")
		return &Action{Describe: fmt.Sprintf("label namespace %s %s=%s", ns, NamespaceLabel, value),
			Change: func(s *State) error { return s.LabelNamespace(ns, NamespaceLabel, value) }}
	case "create-pod":
		ns, name := pickOf(g, Namespaces...), pickOf(g, "a2", "d")
		return &Action{Describe: fmt.Sprintf("create pod %s/%s labelled %s=%s", ns, name, PodLabel, name[:1]),
			Change: func(s *State) error { s.AddPod(ns, name).Labels[PodLabel] = name[:1]; return nil }}
	case "delete-cnp":
		victim := c.CNPs[g.pick(len(c.CNPs))].Name
		return &Action{Describe: "delete clusternetworkpolicy " + victim,
			Change: func(s *State) error { return s.DeleteCNP(victim) }}
	case "reprioritize-cnp":
		a, b := c.CNPs[0], c.CNPs[1]
		return &Action{Describe: fmt.Sprintf("swap the priorities of clusternetworkpolicies %s and %s", a.Name, b.Name),
			Change: func(s *State) error { return s.SwapCNPPriorities(a.Name, b.Name) }}
	case "delete-policy":
		victim := c.Policies[g.pick(len(c.Policies))]
		return &Action{Describe: fmt.Sprintf("delete networkpolicy %s/%s", victim.Namespace, victim.Name),
			Change: func(s *State) error { return s.Delete(victim.Namespace, victim.Name) }}
	}
	return nil
}

// auditMixed puts the last ClusterNetworkPolicy of every auditEvery-th
// case in audit mode, and makes enforcing it (removing the annotation) the
// case's action. Like the NetworkPolicy generator's mode, it is decided by
// the case number after every random draw, so the other cases stay as they
// were.
func (g *generator) auditMixed(c *Generated) {
	if c.ID%auditEvery != 0 {
		g.tag("cnp-mode", "enforced")
		return
	}
	last := c.CNPs[len(c.CNPs)-1]
	last.Audit = true
	g.tag("cnp-mode", "audit")
	if len(c.CNPs) > 1 {
		g.tag("cnp-mode", "enforced")
	}
	for t := range g.tags {
		if strings.HasPrefix(t, "mix-action=") {
			delete(g.tags, t)
		}
	}
	g.tag("mix-action", "enforce-audit-cnp")
	c.Action = &Action{
		Describe: "enforce clusternetworkpolicy " + last.Name + " (remove the audit annotation)",
		Change: func(s *State) error {
			p := last.DeepCopy()
			p.Audit = false
			s.ApplyCNP(p)
			return nil
		},
	}
}

// applyMixed creates NetworkPolicies and ClusterNetworkPolicies together.
func applyMixed(nps []*networkingv1.NetworkPolicy, cnps []*cluster.ClusterNetworkPolicy) func(s *State) error {
	return func(s *State) error {
		for _, np := range nps {
			s.Apply(np)
		}
		for _, p := range cnps {
			s.ApplyCNP(p)
		}
		return nil
	}
}

func describeCNPs(ps []*cluster.ClusterNetworkPolicy) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, " clusternetworkpolicy %s (%s %d)", p.Name, p.Tier, p.Priority)
		if p.Audit {
			b.WriteString(" in audit mode")
		}
	}
	return b.String()
}

// ApplyCNP creates or replaces a ClusterNetworkPolicy.
func (s *State) ApplyCNP(p *cluster.ClusterNetworkPolicy) {
	for i, old := range s.Snap.ClusterNetworkPolicies {
		if old.Name == p.Name {
			s.Snap.ClusterNetworkPolicies[i] = p.DeepCopy()
			return
		}
	}
	s.Snap.ClusterNetworkPolicies = append(s.Snap.ClusterNetworkPolicies, p.DeepCopy())
}

// DeleteCNP deletes a ClusterNetworkPolicy; it is an error when there is
// none.
func (s *State) DeleteCNP(name string) error {
	i := slices.IndexFunc(s.Snap.ClusterNetworkPolicies, func(p *cluster.ClusterNetworkPolicy) bool { return p.Name == name })
	if i < 0 {
		return fmt.Errorf("delete clusternetworkpolicy %s: not found", name)
	}
	s.Snap.ClusterNetworkPolicies = slices.Delete(s.Snap.ClusterNetworkPolicies, i, i+1)
	return nil
}

// SwapCNPPriorities swaps the priorities of two ClusterNetworkPolicies.
func (s *State) SwapCNPPriorities(a, b string) error {
	var pa, pb *cluster.ClusterNetworkPolicy
	for _, p := range s.Snap.ClusterNetworkPolicies {
		switch p.Name {
		case a:
			pa = p
		case b:
			pb = p
		}
	}
	if pa == nil || pb == nil {
		return fmt.Errorf("swap priorities of %s and %s: not found", a, b)
	}
	pa.Priority, pb.Priority = pb.Priority, pa.Priority
	return nil
}
