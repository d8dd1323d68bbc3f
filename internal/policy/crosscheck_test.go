package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// TestCompiledPlansMatchReference compares, over many random clusters, the
// compiled plans of every node with the reference evaluator, for every
// ordered pair of endpoints (pods, host-network pods, finished pods, node
// and outside addresses), each family they share, and ports at and around
// every number the policies use.
func TestCompiledPlansMatchReference(t *testing.T) {
	const snapshots = 100
	checked, allowed := 0, 0
	for seed := range uint64(snapshots) {
		rnd := rand.New(rand.NewPCG(seed, 0xfe11ce))
		s := randomSnapshot(rnd)
		plans := planCache(s, Options{})
		eps := endpoints(s)
		for _, from := range eps {
			for _, to := range eps {
				if from.IP.Is4() != to.IP.Is4() {
					continue
				}
				for _, pp := range probePorts {
					want := Allowed(s, from, to, pp.proto, pp.port)
					got := planAllowed(plans, from, to, pp.proto, pp.port)
					checked++
					if want {
						allowed++
					}
					if got != want {
						t.Fatalf("seed %d: %s -> %s %v/%d: plan says %v, reference says %v\n%s",
							seed, describe(from), describe(to), pp.proto, pp.port, got, want, dump(s))
					}
				}
			}
		}
	}
	t.Logf("%d connections checked over %d clusters, %d allowed", checked, snapshots, allowed)
	// Guard against a generator that makes everything allowed or denied.
	if allowed < checked/10 || allowed > checked*9/10 {
		t.Errorf("only %d of %d connections allowed: the random clusters exercise too little", allowed, checked)
	}
}

var portPool = []int32{53, 80, 443, 1000, 2000, 7000, 8080}

// probePorts are every pool number and its neighbours, plus the extremes.
var probePorts = func() []struct {
	proto plan.Protocol
	port  uint16
} {
	var out []struct {
		proto plan.Protocol
		port  uint16
	}
	add := func(p plan.Protocol, n int) {
		if n >= 0 && n <= 65535 {
			out = append(out, struct {
				proto plan.Protocol
				port  uint16
			}{p, uint16(n)})
		}
	}
	for _, n := range portPool {
		add(plan.TCP, int(n)-1)
		add(plan.TCP, int(n))
		add(plan.TCP, int(n)+1)
	}
	add(plan.TCP, 0)
	add(plan.TCP, 65535)
	for _, n := range []int{0, 53, 80, 1000, 65535} {
		add(plan.UDP, n)
	}
	add(plan.SCTP, 7000)
	add(plan.SCTP, 80)
	return out
}()

func endpoints(s *cluster.Snapshot) []Endpoint {
	var out []Endpoint
	for _, p := range s.Pods {
		if p == nil {
			continue
		}
		for _, ip := range p.IPs {
			out = append(out, Endpoint{Pod: p, IP: ip})
		}
	}
	for _, n := range s.Nodes {
		for _, ip := range n.Addresses {
			out = append(out, Endpoint{IP: ip})
		}
	}
	return append(out, Endpoint{IP: netip.MustParseAddr("203.0.113.5")}, Endpoint{IP: netip.MustParseAddr("2001:db8::5")})
}

func describe(e Endpoint) string {
	if e.Pod == nil {
		return e.IP.String()
	}
	return fmt.Sprintf("%s(%s, %s, enforceable=%v)", e.Pod.Key(), e.IP, e.Pod.NodeName, e.Pod.Enforceable())
}

func dump(s *cluster.Snapshot) string {
	b, _ := json.MarshalIndent(struct {
		Namespaces []*cluster.Namespace
		Pods       []*cluster.Pod
		Policies   []*networkingv1.NetworkPolicy
	}{s.Namespaces, s.Pods, s.Policies}, "", " ")
	return string(b)
}

// randomSnapshot draws a small cluster over every dimension the API has.
func randomSnapshot(rnd *rand.Rand) *cluster.Snapshot {
	g := &randGen{rnd: rnd}
	s := &cluster.Snapshot{}
	nodes := 2 + rnd.IntN(2)
	for i := 1; i <= nodes; i++ {
		s.Nodes = append(s.Nodes, &cluster.Node{
			Name:      fmt.Sprintf("node-%d", i),
			Addresses: addrs(fmt.Sprintf("192.168.0.%d", i), fmt.Sprintf("fd00:ff::%d", i)),
			PodCIDRs:  []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", i)), netip.MustParsePrefix(fmt.Sprintf("fd00:%d::/64", i))},
		})
	}
	for i := range 4 {
		if i == 3 && rnd.IntN(2) == 0 {
			continue // a namespace known only from its pods
		}
		name := fmt.Sprintf("n%d", i)
		l := g.labels(map[string][]string{"team": {"a", "b"}, "env": {"p", "q"}})
		l[corev1.LabelMetadataName] = name
		s.Namespaces = append(s.Namespaces, &cluster.Namespace{Name: name, Labels: l})
	}
	npods := 7 + rnd.IntN(7)
	for i := range npods {
		s.Pods = append(s.Pods, g.pod(s, i))
	}
	for i := range 2 + rnd.IntN(6) {
		s.Policies = append(s.Policies, g.policy(s, i))
	}
	return s
}

type randGen struct {
	rnd *rand.Rand
}

func (g *randGen) pick(n int) int { return g.rnd.IntN(n) }

func (g *randGen) labels(choices map[string][]string) labels.Set {
	out := labels.Set{}
	for _, k := range []string{"app", "tier", "team", "env"} {
		if vs, ok := choices[k]; ok && g.pick(4) != 0 {
			out[k] = vs[g.pick(len(vs))]
		}
	}
	return out
}

var portNames = []string{"http", "dns", "web", "sync"}

func (g *randGen) pod(s *cluster.Snapshot, i int) *cluster.Pod {
	node := 1 + g.pick(len(s.Nodes))
	p := &cluster.Pod{
		Namespace: fmt.Sprintf("n%d", g.pick(4)),
		Name:      fmt.Sprintf("p%d", i),
		Labels:    g.labels(map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}}),
		NodeName:  fmt.Sprintf("node-%d", node),
		Phase:     corev1.PodRunning,
	}
	v4 := netip.MustParseAddr(fmt.Sprintf("10.%d.0.%d", node, 10+i))
	v6 := netip.MustParseAddr(fmt.Sprintf("fd00:%d::%x", node, 0x10+i))
	switch r := g.pick(20); {
	case r == 0:
		p.HostNetwork = true
		p.IPs = s.Nodes[node-1].Addresses
	case r == 1:
		p.Phase = corev1.PodSucceeded
		p.IPs = []netip.Addr{v4, v6}
	case r < 4:
		p.IPs = []netip.Addr{v4}
	case r < 6:
		p.IPs = []netip.Addr{v6}
	default:
		p.IPs = []netip.Addr{v4, v6}
	}
	for range g.pick(4) {
		protos := []corev1.Protocol{"", tcp, udp, sctp}
		p.Ports = append(p.Ports, cluster.ContainerPort{
			Name: portNames[g.pick(len(portNames))], Port: portPool[g.pick(len(portPool))], Protocol: protos[g.pick(len(protos))],
		})
	}
	return p
}

func (g *randGen) policy(s *cluster.Snapshot, i int) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("n%d", g.pick(4)), Name: fmt.Sprintf("pol%d", i)}}
	p.Spec.PodSelector = *g.selector(map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}})
	types := [][]networkingv1.PolicyType{nil, nil, ingressOnly, egressOnly, bothTypes, {"Bogus"}}
	p.Spec.PolicyTypes = types[g.pick(len(types))]
	if n := g.pick(4); n > 0 {
		p.Spec.Ingress = []in{}
		for range n - 1 {
			p.Spec.Ingress = append(p.Spec.Ingress, in{From: g.peers(s), Ports: g.ports()})
		}
	}
	if n := g.pick(4); n > 0 {
		p.Spec.Egress = []out{}
		for range n - 1 {
			p.Spec.Egress = append(p.Spec.Egress, out{To: g.peers(s), Ports: g.ports()})
		}
	}
	return p
}

// selector draws matchLabels, every matchExpressions operator, the empty
// selector and, rarely, an invalid one.
func (g *randGen) selector(choices map[string][]string) *metav1.LabelSelector {
	keys := slices.Sorted(maps.Keys(choices)) // map order must not leak into the draw
	k := keys[g.pick(len(keys))]
	v := choices[k][g.pick(len(choices[k]))]
	switch g.pick(9) {
	case 0:
		return &metav1.LabelSelector{}
	case 1, 2:
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	case 3:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{v, choices[k][0]}}}}
	case 4:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: []string{v}}}}
	case 5:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: metav1.LabelSelectorOpExists}}}
	case 6:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: metav1.LabelSelectorOpDoesNotExist}}}
	case 7:
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: keys[0], Operator: metav1.LabelSelectorOpExists}}}
	default:
		if g.pick(4) == 0 {
			return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: "Near"}}}
		}
		return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}

func (g *randGen) peers(s *cluster.Snapshot) []networkingv1.NetworkPolicyPeer {
	n := g.pick(4)
	if n == 0 && g.pick(3) > 0 {
		return nil
	}
	out := []networkingv1.NetworkPolicyPeer{}
	for range n {
		podChoices := map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}}
		nsChoices := map[string][]string{"team": {"a", "b"}, "env": {"p", "q"}}
		switch g.pick(6) {
		case 0:
			out = append(out, podPeer(g.selector(podChoices)))
		case 1:
			out = append(out, nsPeer(g.selector(nsChoices)))
		case 2:
			out = append(out, bothPeer(g.selector(nsChoices), g.selector(podChoices)))
		case 3:
			ns := fmt.Sprintf("n%d", g.pick(4))
			out = append(out, nsPeer(sel(corev1.LabelMetadataName+"="+ns)))
		default:
			out = append(out, g.ipBlock(s))
		}
	}
	return out
}

// ipBlock builds a block around a real address (pod or node), with excepts
// around other real addresses, and rarely something broken.
func (g *randGen) ipBlock(s *cluster.Snapshot) networkingv1.NetworkPolicyPeer {
	var all []netip.Addr
	for _, p := range s.Pods {
		all = append(all, p.IPs...)
	}
	for _, n := range s.Nodes {
		all = append(all, n.Addresses...)
	}
	a := all[g.pick(len(all))]
	bits := 8 + g.pick(25)
	if a.Is6() {
		bits = 8 + g.pick(121)
	}
	cidr := netip.PrefixFrom(a, bits).Masked()
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	for range g.pick(3) {
		e := all[g.pick(len(all))]
		if !cidr.Contains(e) || bits >= e.BitLen() {
			continue
		}
		width := bits + 1 + g.pick(e.BitLen()-bits)
		if width > e.BitLen() {
			width = e.BitLen()
		}
		b.Except = append(b.Except, netip.PrefixFrom(e, width).Masked().String())
	}
	switch g.pick(30) {
	case 0:
		b.CIDR = "10.0.0.0/40"
	case 1:
		b.Except = append(b.Except, "junk")
	case 2:
		b.Except = append(b.Except, "0.0.0.0/0") // wider than the cidr
	}
	return networkingv1.NetworkPolicyPeer{IPBlock: b}
}

func (g *randGen) ports() []networkingv1.NetworkPolicyPort {
	n := g.pick(4)
	if n == 0 && g.pick(3) > 0 {
		return nil
	}
	out := []networkingv1.NetworkPolicyPort{}
	protos := []corev1.Protocol{"", tcp, udp, sctp}
	for range n {
		proto := protos[g.pick(len(protos))]
		switch g.pick(8) {
		case 0, 1:
			out = append(out, num(proto, portPool[g.pick(len(portPool))]))
		case 2:
			lo, hi := portPool[g.pick(len(portPool))], portPool[g.pick(len(portPool))]
			if lo > hi {
				lo, hi = hi, lo
			}
			out = append(out, rng(proto, lo, hi))
		case 3, 4, 5:
			out = append(out, named(proto, portNames[g.pick(len(portNames))]))
		case 6:
			out = append(out, allOf(proto))
		default:
			bad := []networkingv1.NetworkPolicyPort{num(tcp, 0), num("ICMP", 80), rng(tcp, 2000, 1000),
				{Port: ptrTo(intstr.FromString("http")), EndPort: ptrTo[int32](90)}}
			out = append(out, bad[g.pick(len(bad))])
		}
	}
	return out
}
