package conformance

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Generated is one generated case: policies created together, then
// optionally one action (a relabel, a new pod, a deleted or updated policy).
// Every probe is expected to agree with the reference evaluator, before and
// after the action.
type Generated struct {
	ID       int
	Tags     []string // dimension=value, sorted: what the case exercises
	Policies []*networkingv1.NetworkPolicy
	// CNPs are the ClusterNetworkPolicies of a mixed case (GenerateMixed),
	// created with the NetworkPolicies.
	CNPs   []*cluster.ClusterNetworkPolicy
	Action *Action
	prefix string // of the name: gen or mix
}

// Action is a change made after the policies are in place.
type Action struct {
	Describe string
	Change   func(s *State) error
}

// Steps returns the case as steps for the Runner.
func (g Generated) Steps() []Step {
	steps := []Step{{Action: describe(g.Policies) + describeCNPs(g.CNPs), Change: applyMixed(g.Policies, g.CNPs)}}
	if g.Action != nil {
		steps = append(steps, Step{Action: g.Action.Describe, Change: g.Action.Change})
	}
	return steps
}

// Name is a short title: gen-<id> and the tags.
func (g Generated) Name() string {
	if g.prefix == "" {
		return fmt.Sprintf("gen-%03d", g.ID)
	}
	return fmt.Sprintf("%s-%03d", g.prefix, g.ID)
}

// Dimensions are the generator's dimensions and every value each can take;
// the fast sample covers all of them.
var Dimensions = map[string][]string{
	"target":    {"all", "labels", "expr-in", "expr-notin", "expr-exists", "nothing"},
	"direction": {"ingress", "egress", "both"},
	"types":     {"explicit", "implicit"},
	"rules":     {"deny", "one", "several"},
	"peer": {"everyone", "pod-empty", "pod-labels", "pod-expr", "ns-empty", "ns-labels", "ns-name", "ns-expr",
		"pod+ns-empty", "pod+ns-labels", "pod-empty+ns-labels", "pod-labels+ns-empty",
		"ipblock-host-v4", "ipblock-host-v6", "ipblock-subnet-v4", "ipblock-subnet-v6",
		"ipblock-except-v4", "ipblock-except-v6", "ipblock-wide-except-v4", "ipblock-wide-except-v6", "ipblock-both-families"},
	"port":     {"every", "number", "named", "named-wrong-protocol", "named-not-served", "endport", "protocol-only", "several"},
	"protocol": {"TCP", "UDP", "SCTP", "none"},
	"policies": {"1", "2", "3"},
	"overlap":  {"same-pods", "independent"},
	"action":   {"none", "relabel-pod", "relabel-namespace", "create-pod", "delete-policy", "update-policy", "enforce-audit"},
	"mode":     {"enforced", "audit"},
}

// auditEvery puts the last policy of every auditEvery-th case in audit mode
// and makes its action the removal of the annotation. It is decided by the
// case's number, not by drawing from the random stream, which the other
// dimensions keep to themselves.
const auditEvery = 5

// Generate returns n distinct cases, deterministic from seed and base (the
// lab's initial snapshot, whose pod addresses the ipBlocks are built from).
func Generate(seed uint64, base *cluster.Snapshot, n int) []Generated {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x6b7562652d66656e)), base: &State{Snap: base}}
	var out []Generated
	seen := map[string]bool{}
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		c := g.generate(len(out) + 1)
		key := canonical(c)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	return out
}

// canonical identifies a case by its policies and action, not its ID.
func canonical(c Generated) string {
	var b strings.Builder
	for _, np := range c.Policies {
		cp := np.DeepCopy()
		cp.Name = ""
		j, _ := json.Marshal(cp)
		b.Write(j)
	}
	for _, p := range c.CNPs {
		cp := p.DeepCopy()
		cp.Name = ""
		j, _ := json.Marshal(cp)
		b.Write(j)
	}
	if c.Action != nil {
		b.WriteString(c.Action.Describe)
	}
	return b.String()
}

type generator struct {
	rng  *rand.Rand
	base *State
	tags map[string]bool
}

func (g *generator) tag(dim, value string) { g.tags[dim+"="+value] = true }

func (g *generator) pick(n int) int { return g.rng.IntN(n) }

func pickOf[T any](g *generator, values ...T) T { return values[g.pick(len(values))] }

func (g *generator) generate(id int) Generated {
	g.tags = map[string]bool{}
	c := Generated{ID: id}
	count := pickOf(g, 1, 1, 1, 2, 2, 3)
	g.tag("policies", fmt.Sprint(count))
	ns := pickOf(g, Namespaces...)
	first := g.policy(fmt.Sprintf("gen-%d-1", id), ns)
	c.Policies = append(c.Policies, first)
	for i := 2; i <= count; i++ {
		pns := ns
		if g.pick(3) == 0 {
			pns = pickOf(g, Namespaces...)
		}
		np := g.policy(fmt.Sprintf("gen-%d-%d", id, i), pns)
		if g.pick(2) == 0 && pns == ns {
			np.Spec.PodSelector = *first.Spec.PodSelector.DeepCopy() // several policies on one pod
		}
		c.Policies = append(c.Policies, np)
	}
	if count > 1 {
		g.tag("overlap", overlap(c.Policies))
	}
	c.Action = g.action(c.Policies)
	if id%auditEvery != 0 {
		g.tag("mode", "enforced")
	} else {
		last := c.Policies[len(c.Policies)-1]
		last.Annotations = map[string]string{policy.ModeAnnotation: policy.ModeAudit}
		g.tag("mode", "audit")
		if len(c.Policies) > 1 {
			g.tag("mode", "enforced")
		}
		for t := range g.tags {
			if strings.HasPrefix(t, "action=") {
				delete(g.tags, t)
			}
		}
		g.tag("action", "enforce-audit")
		c.Action = &Action{
			Describe: "enforce networkpolicy " + last.Namespace + "/" + last.Name + " (remove the audit annotation)",
			Change: func(s *State) error {
				np := last.DeepCopy()
				np.Annotations = nil
				s.Apply(np)
				return nil
			},
		}
	}
	for t := range g.tags {
		c.Tags = append(c.Tags, t)
	}
	slices.Sort(c.Tags)
	return c
}

// overlap says whether two of the policies select a pod in common.
func overlap(nps []*networkingv1.NetworkPolicy) string {
	for i, a := range nps {
		for _, b := range nps[i+1:] {
			if a.Namespace == b.Namespace && (selectsSome(a, b)) {
				return "same-pods"
			}
		}
	}
	return "independent"
}

func selectsSome(a, b *networkingv1.NetworkPolicy) bool {
	for _, name := range PodNames {
		p := &cluster.Pod{Labels: map[string]string{PodLabel: name}}
		if matchesPod(&a.Spec.PodSelector, p) && matchesPod(&b.Spec.PodSelector, p) {
			return true
		}
	}
	return false
}

func matchesPod(sel *metav1.LabelSelector, p *cluster.Pod) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(p.Labels)
}

func (g *generator) policy(name, ns string) *networkingv1.NetworkPolicy {
	np := Policy(ns, name, g.target())
	dir := pickOf(g, "ingress", "egress", "both")
	g.tag("direction", dir)
	if dir != "egress" {
		n := g.ruleCount()
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
		for range n {
			np.Spec.Ingress = append(np.Spec.Ingress, From(g.ports(), g.peers()...))
		}
	}
	if dir != "ingress" {
		n := g.ruleCount()
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
		for range n {
			np.Spec.Egress = append(np.Spec.Egress, To(g.ports(), g.peers()...))
		}
	}
	// Leaving policyTypes out means the same when the policy has ingress
	// (always implied) and egress rules (implied by their presence).
	implicitOK := dir == "ingress" || (dir == "both" && len(np.Spec.Egress) > 0)
	if implicitOK && g.pick(3) == 0 {
		np.Spec.PolicyTypes = nil
		g.tag("types", "implicit")
	} else {
		g.tag("types", "explicit")
	}
	return np
}

func (g *generator) target() metav1.LabelSelector {
	kind := pickOf(g, "all", "labels", "labels", "expr-in", "expr-notin", "expr-exists", "nothing")
	g.tag("target", kind)
	switch kind {
	case "labels":
		return Labels(PodLabel, pickOf(g, PodNames...))
	case "expr-in":
		return Expr(PodLabel, metav1.LabelSelectorOpIn, pickOf(g, "a", "b"), "c")
	case "expr-notin":
		return Expr(PodLabel, metav1.LabelSelectorOpNotIn, pickOf(g, PodNames...))
	case "expr-exists":
		return Expr(PodLabel, metav1.LabelSelectorOpExists)
	case "nothing":
		return Labels(PodLabel, "nobody")
	}
	return Labels()
}

func (g *generator) ruleCount() int {
	n := pickOf(g, 0, 1, 1, 1, 2, 2)
	g.tag("rules", map[int]string{0: "deny", 1: "one", 2: "several"}[n])
	return n
}

func (g *generator) peers() []networkingv1.NetworkPolicyPeer {
	n := pickOf(g, 0, 1, 1, 1, 2)
	if n == 0 {
		g.tag("peer", "everyone")
		return nil
	}
	var out []networkingv1.NetworkPolicyPeer
	for range n {
		out = append(out, g.peer()...)
	}
	return out
}

func (g *generator) nsSelector() metav1.LabelSelector {
	switch pickOf(g, "labels", "name", "expr") {
	case "labels":
		return Labels(NamespaceLabel, pickOf(g, Namespaces...))
	case "name":
		return Labels(corev1.LabelMetadataName, pickOf(g, Namespaces...))
	}
	return Expr(NamespaceLabel, pickOf(g, metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn), pickOf(g, Namespaces...))
}

func (g *generator) podSelector() metav1.LabelSelector {
	if g.pick(2) == 0 {
		return Labels(PodLabel, pickOf(g, PodNames...))
	}
	return Expr(PodLabel, pickOf(g, metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn), pickOf(g, PodNames...))
}

func (g *generator) peer() []networkingv1.NetworkPolicyPeer {
	kind := pickOf(g, Dimensions["peer"][1:]...)
	g.tag("peer", kind)
	switch kind {
	case "pod-empty":
		return []networkingv1.NetworkPolicyPeer{PodPeer(all)}
	case "pod-labels":
		return []networkingv1.NetworkPolicyPeer{PodPeer(Labels(PodLabel, pickOf(g, PodNames...)))}
	case "pod-expr":
		return []networkingv1.NetworkPolicyPeer{PodPeer(g.podSelector())}
	case "ns-empty":
		return []networkingv1.NetworkPolicyPeer{NamespacePeer(all)}
	case "ns-labels":
		return []networkingv1.NetworkPolicyPeer{NamespacePeer(Labels(NamespaceLabel, pickOf(g, Namespaces...)))}
	case "ns-name":
		return []networkingv1.NetworkPolicyPeer{NamespacePeer(Labels(corev1.LabelMetadataName, pickOf(g, Namespaces...)))}
	case "ns-expr":
		return []networkingv1.NetworkPolicyPeer{NamespacePeer(g.nsSelector())}
	case "pod+ns-empty":
		return []networkingv1.NetworkPolicyPeer{PodNamespacePeer(all, all)}
	case "pod+ns-labels":
		return []networkingv1.NetworkPolicyPeer{PodNamespacePeer(g.podSelector(), g.nsSelector())}
	case "pod-empty+ns-labels":
		return []networkingv1.NetworkPolicyPeer{PodNamespacePeer(all, g.nsSelector())}
	case "pod-labels+ns-empty":
		return []networkingv1.NetworkPolicyPeer{PodNamespacePeer(g.podSelector(), all)}
	}
	return g.blockPeer(kind)
}

// blockPeer builds ipBlocks from the pods' real addresses.
func (g *generator) blockPeer(kind string) []networkingv1.NetworkPolicyPeer {
	pod := func() []netip.Addr { return g.base.IPs(pickOf(g, g.base.PodKeys()...)) }
	of := func(ips []netip.Addr, v4 bool) netip.Addr { a, _ := family(ips, v4); return a }
	host := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
	wide := func(a netip.Addr, bits int) string { return netip.PrefixFrom(a, bits).Masked().String() }
	switch kind {
	case "ipblock-host-v4", "ipblock-host-v6":
		return []networkingv1.NetworkPolicyPeer{BlockPeer(host(of(pod(), kind == "ipblock-host-v4")))}
	case "ipblock-subnet-v4":
		return []networkingv1.NetworkPolicyPeer{BlockPeer(wide(of(pod(), true), 24))}
	case "ipblock-subnet-v6":
		return []networkingv1.NetworkPolicyPeer{BlockPeer(wide(of(pod(), false), 64))}
	case "ipblock-except-v4", "ipblock-except-v6":
		v4 := kind == "ipblock-except-v4"
		bits := map[bool]int{true: 16, false: 48}[v4]
		a, b := of(pod(), v4), of(pod(), v4)
		except := []string{host(a)}
		if b != a {
			except = append(except, host(b))
		}
		return []networkingv1.NetworkPolicyPeer{BlockPeer(wide(a, bits), except...)}
	case "ipblock-wide-except-v4":
		return []networkingv1.NetworkPolicyPeer{BlockPeer("0.0.0.0/0", host(of(pod(), true)))}
	case "ipblock-wide-except-v6":
		return []networkingv1.NetworkPolicyPeer{BlockPeer("::/0", host(of(pod(), false)))}
	}
	ips := pod() // ipblock-both-families: one pod by its two addresses
	return []networkingv1.NetworkPolicyPeer{BlockPeer(host(of(ips, true))), BlockPeer(host(of(ips, false)))}
}

func (g *generator) ports() []networkingv1.NetworkPolicyPort {
	kind := pickOf(g, Dimensions["port"]...)
	g.tag("port", kind)
	switch kind {
	case "every":
		return nil
	case "several":
		return []networkingv1.NetworkPolicyPort{g.port(pickOf(g, Dimensions["port"][1:7]...)), g.port(pickOf(g, Dimensions["port"][1:7]...))}
	}
	return []networkingv1.NetworkPolicyPort{g.port(kind)}
}

func (g *generator) port(kind string) networkingv1.NetworkPolicyPort {
	g.tag("port", kind)
	protoName := pickOf(g, "TCP", "UDP", "SCTP", "none")
	g.tag("protocol", protoName)
	proto := corev1.Protocol(protoName)
	effective := proto
	if protoName == "none" {
		proto, effective = "", corev1.ProtocolTCP
	}
	num := pickOf(g, PortNumbers...)
	switch kind {
	case "named":
		return NamedPort(proto, PortName(num, effective))
	case "named-wrong-protocol":
		other := pickOf(g, slices.DeleteFunc(slices.Clone(Protocols), func(p corev1.Protocol) bool { return p == effective })...)
		return NamedPort(proto, PortName(num, other))
	case "named-not-served":
		return NamedPort(proto, PortName(82, effective))
	case "endport":
		r := pickOf(g, [2]int32{80, 81}, [2]int32{81, 90}, [2]int32{1, 80}, [2]int32{79, 80}, [2]int32{82, 1000})
		return PortRange(proto, r[0], r[1])
	case "protocol-only":
		return AnyPort(proto)
	}
	return Port(proto, num)
}

func (g *generator) action(nps []*networkingv1.NetworkPolicy) *Action {
	kind := pickOf(g, "none", "none", "relabel-pod", "relabel-namespace", "create-pod", "delete-policy", "update-policy")
	g.tag("action", kind)
	switch kind {
	case "relabel-pod":
		key := pickOf(g, g.base.PodKeys()...)
		value := pickOf(g, "a", "b", "c", "d")
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
	case "delete-policy":
		victim := nps[g.pick(len(nps))]
		return &Action{Describe: fmt.Sprintf("delete networkpolicy %s/%s", victim.Namespace, victim.Name),
			Change: func(s *State) error { return s.Delete(victim.Namespace, victim.Name) }}
	case "update-policy":
		old := nps[g.pick(len(nps))]
		np := g.policy(old.Name, old.Namespace)
		return &Action{Describe: fmt.Sprintf("update networkpolicy %s/%s", np.Namespace, np.Name),
			Change: func(s *State) error { s.Apply(np); return nil }}
	}
	return nil
}

// Sample picks a fixed subset for every-run CI: greedily, the cases that
// add a dimension value not yet covered, until every value of Dimensions is
// covered, then cases spread evenly over the rest until size is reached.
// It returns indexes into cases, sorted.
func Sample(cases []Generated, size int) []int {
	covered := map[string]bool{}
	picked := map[int]bool{}
	for {
		best, gain := -1, 0
		for i, c := range cases {
			if picked[i] {
				continue
			}
			n := 0
			for _, t := range c.Tags {
				if !covered[t] {
					n++
				}
			}
			if n > gain {
				best, gain = i, n
			}
		}
		if best < 0 {
			break
		}
		picked[best] = true
		for _, t := range cases[best].Tags {
			covered[t] = true
		}
	}
	target := min(size, len(cases))
	step := max(1, len(cases)/max(1, size))
	for i := 0; i < len(cases) && len(picked) < target; i += step {
		picked[i] = true
	}
	for i := 0; i < len(cases) && len(picked) < target; i++ {
		picked[i] = true
	}
	out := make([]int, 0, len(picked))
	for i := range picked {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// Missing lists the dimension values no case covers.
func Missing(cases []Generated) []string { return MissingIn(cases, Dimensions) }

// MissingIn lists the values of dims no case covers.
func MissingIn(cases []Generated, dims map[string][]string) []string {
	have := map[string]bool{}
	for _, c := range cases {
		for _, t := range c.Tags {
			have[t] = true
		}
	}
	var out []string
	for dim, values := range dims {
		for _, v := range values {
			if !have[dim+"="+v] {
				out = append(out, dim+"="+v)
			}
		}
	}
	slices.Sort(out)
	return out
}
