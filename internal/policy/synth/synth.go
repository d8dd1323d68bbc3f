package synth

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// Config sizes a synthetic cluster.
type Config struct {
	Pods       int // all pods, including those on the measured node
	Policies   int
	Nodes      int // at least 1; node 0 is the measured node
	Namespaces int
	PodsOnNode int // pods placed on node 0; the rest spread over the others
	Seed       uint64
}

// NodeName returns the name of node i; NodeName(0) holds PodsOnNode pods.
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// Generate builds the cluster Config describes. Every pod is dual-stack
// (IPv4 from 10.0.0.0/8, IPv6 from fd00:10::/32, one block per node); about
// one pod in a hundred uses the host network and one in a hundred has
// finished, so both kinds of pods the compiler must ignore are present.
func Generate(cfg Config) *cluster.Snapshot {
	cfg = cfg.withDefaults()
	g := &gen{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, 0x6b756265))}
	s := &cluster.Snapshot{}
	g.nodes(s)
	g.namespaces(s)
	g.pods(s)
	for i := range cfg.Policies {
		s.Policies = append(s.Policies, g.policy(i))
	}
	return s
}

func (c Config) withDefaults() Config {
	c.Nodes = max(c.Nodes, 1)
	c.Namespaces = max(c.Namespaces, 1)
	c.PodsOnNode = min(max(c.PodsOnNode, 0), c.Pods)
	if c.Nodes == 1 {
		c.PodsOnNode = c.Pods
	}
	return c
}

type gen struct {
	cfg Config
	rnd *rand.Rand
	// blockBits is the host part of each node's pod block.
	blockBits int
	next      []int // next host number per node
}

var (
	apps     = 25
	tiers    = []string{"web", "api", "db"}
	versions = []string{"v1", "v2"}
	envs     = []string{"prod", "staging", "dev"}
	teams    = 7
)

func (g *gen) nodes(s *cluster.Snapshot) {
	perNode := g.cfg.PodsOnNode
	if g.cfg.Nodes > 1 {
		perNode = max(perNode, (g.cfg.Pods-g.cfg.PodsOnNode)/(g.cfg.Nodes-1)+1)
	}
	g.blockBits = max(8, bits.Len(uint(perNode+2)))
	if g.cfg.Nodes<<g.blockBits > 1<<24 {
		panic(fmt.Sprintf("synth: %d nodes of %d pods do not fit in 10.0.0.0/8", g.cfg.Nodes, perNode))
	}
	g.next = make([]int, g.cfg.Nodes)
	for i := range g.cfg.Nodes {
		g.next[i] = 2 // .0 is the network, .1 the node's bridge
		s.Nodes = append(s.Nodes, &cluster.Node{
			Name:      NodeName(i),
			Addresses: []netip.Addr{nodeAddr4(i), nodeAddr6(i)},
			PodCIDRs:  []netip.Prefix{g.block4(i), g.block6(i)},
		})
	}
}

func nodeAddr4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)})
}

func nodeAddr6(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 0, 0x19, 0x68, 14: byte(i >> 8), 15: byte(i)})
}

func (g *gen) block4(node int) netip.Prefix {
	base := uint32(10)<<24 | uint32(node)<<g.blockBits
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(base >> 24), byte(base >> 16), byte(base >> 8), byte(base)}), 32-g.blockBits)
}

func (g *gen) block6(node int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x10, 6: byte(node >> 8), 7: byte(node)}), 64)
}

func (g *gen) podAddrs(node int) []netip.Addr {
	host := g.next[node]
	g.next[node]++
	b4 := g.block4(node).Addr().As4()
	v4 := uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3]) | uint32(host)
	b6 := g.block6(node).Addr().As16()
	b6[14], b6[15] = byte(host>>8), byte(host)
	return []netip.Addr{
		netip.AddrFrom4([4]byte{byte(v4 >> 24), byte(v4 >> 16), byte(v4 >> 8), byte(v4)}),
		netip.AddrFrom16(b6),
	}
}

func (g *gen) namespaces(s *cluster.Snapshot) {
	for i := range g.cfg.Namespaces {
		name := fmt.Sprintf("ns-%d", i)
		s.Namespaces = append(s.Namespaces, &cluster.Namespace{Name: name, Labels: labels.Set{
			corev1.LabelMetadataName: name,
			"team":                   fmt.Sprintf("team-%d", i%teams),
			"env":                    envs[i%len(envs)],
		}})
	}
}

func (g *gen) pods(s *cluster.Snapshot) {
	for k := range g.cfg.Pods {
		node := 0
		if k >= g.cfg.PodsOnNode {
			node = 1 + (k-g.cfg.PodsOnNode)%(g.cfg.Nodes-1)
		}
		tier := g.rnd.IntN(len(tiers))
		p := &cluster.Pod{
			Namespace: fmt.Sprintf("ns-%d", g.rnd.IntN(g.cfg.Namespaces)),
			Name:      fmt.Sprintf("pod-%d", k),
			NodeName:  NodeName(node),
			Phase:     corev1.PodRunning,
			Labels: labels.Set{
				"app":     fmt.Sprintf("app-%d", g.rnd.IntN(apps)),
				"tier":    tiers[tier],
				"version": versions[g.rnd.IntN(len(versions))],
			},
			Ports: slices.Clone(tierPorts[tier]),
		}
		switch r := g.rnd.IntN(100); {
		case r == 0:
			p.HostNetwork = true
			p.IPs = slices.Clone(s.Nodes[node].Addresses)
		case r == 1:
			p.Phase = corev1.PodSucceeded
			p.IPs = g.podAddrs(node)
		default:
			p.IPs = g.podAddrs(node)
		}
		s.Pods = append(s.Pods, p)
	}
}

// tierPorts gives each tier its container ports. "http" means 8080 on web
// pods and 80 on api pods, so one named-port policy resolves to different
// numbers on different pods.
var tierPorts = [][]cluster.ContainerPort{
	{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}},
	{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "grpc", Port: 9000, Protocol: corev1.ProtocolTCP},
		{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP}},
	{{Name: "db", Port: 5432, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		{Name: "sync", Port: 7000, Protocol: corev1.ProtocolSCTP}},
}

func (g *gen) policy(i int) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{
		Namespace: fmt.Sprintf("ns-%d", g.rnd.IntN(g.cfg.Namespaces)),
		Name:      fmt.Sprintf("policy-%d", i),
	}}
	np.Spec.PodSelector = g.podSelector()
	switch r := g.rnd.IntN(10); {
	case r < 4: // ingress rules, types left to defaulting
		np.Spec.Ingress = g.ingressRules()
	case r < 6:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		np.Spec.Ingress = g.ingressRules()
		np.Spec.Egress = g.egressRules()
	case r < 8: // egress rules, types left to defaulting
		np.Spec.Egress = g.egressRules()
	case r < 9: // default deny ingress
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	default: // default deny both ways
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	return np
}
