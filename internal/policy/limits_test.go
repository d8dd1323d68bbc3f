package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// limitCase is a cluster with objects at the API's limits, and the probes
// whose verdicts the compiled plans must share with the reference.
type limitCase struct {
	name   string
	snap   *cluster.Snapshot
	probes []limitProbe
}

type limitProbe struct {
	from, to Endpoint
	proto    plan.Protocol
	port     uint16
	want     bool
}

// limitCases builds the clusters: 1,000 policies selecting one pod; one
// policy with thousands of ports and peers; every name and label at its
// maximum length; pods with dozens of addresses (more than status.podIPs
// allows: a snapshot can hold them, so the compiler must cope).
func limitCases() []limitCase {
	return []limitCase{manyPoliciesOnePod(1000), hugePolicy(2000, 2000), longestNames(), manyAddresses(24)}
}

func limitNode(i int) *cluster.Node {
	return &cluster.Node{
		Name:      fmt.Sprintf("node-%d", i),
		Addresses: addrs(fmt.Sprintf("192.168.0.%d", i), fmt.Sprintf("fd00:ff::%d", i)),
		PodCIDRs:  []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", i)), netip.MustParsePrefix(fmt.Sprintf("fd00:%d::/64", i))},
	}
}

func limitPod(ns, name, node string, l string, ips ...netip.Addr) *cluster.Pod {
	return &cluster.Pod{Namespace: ns, Name: name, Labels: lbls(l), NodeName: node, Phase: corev1.PodRunning, IPs: ips}
}

func v4(node, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(node), byte(i >> 8), byte(i)})
}

// manyPoliciesOnePod: n policies select pod "target"; policy i lets pods
// labelled client=c<i%50> in on plan.TCP port 1000+i.
func manyPoliciesOnePod(n int) limitCase {
	s := &cluster.Snapshot{Nodes: []*cluster.Node{limitNode(1), limitNode(2)}}
	target := limitPod("ns", "target", "node-1", "app=target", v4(1, 1))
	s.Pods = append(s.Pods, target)
	var clients []*cluster.Pod
	for k := range 50 {
		c := limitPod("ns", fmt.Sprintf("client-%d", k), "node-2", fmt.Sprintf("client=c%d", k), v4(2, 10+k))
		clients = append(clients, c)
		s.Pods = append(s.Pods, c)
	}
	for i := range n {
		s.Policies = append(s.Policies, np("ns", fmt.Sprintf("allow-%d", i), sel("app=target"), ingressOnly,
			[]in{{From: peers{podPeer(sel(fmt.Sprintf("client=c%d", i%50)))}, Ports: ports{num(tcp, int32(1000+i))}}}, nil))
	}
	lc := limitCase{name: fmt.Sprintf("%d policies selecting one pod", n), snap: s}
	for k := 0; k < 50; k += 7 {
		for i := 0; i < n; i += 13 {
			lc.probes = append(lc.probes, limitProbe{Endpoint{clients[k], clients[k].IPs[0]}, Endpoint{target, target.IPs[0]}, plan.TCP, uint16(1000 + i), i%50 == k})
		}
	}
	return lc
}

// hugePolicy: one policy whose one rule has nPorts ports (single odd ports,
// ranges and plan.UDP) and nPeers peers (single-address ipBlocks, blocks with
// excepts, and pod selectors).
func hugePolicy(nPorts, nPeers int) limitCase {
	s := &cluster.Snapshot{Nodes: []*cluster.Node{limitNode(1), limitNode(2)}}
	target := limitPod("ns", "target", "node-1", "app=target", v4(1, 1))
	member := limitPod("ns", "member", "node-2", "tier=t8", v4(2, 7))
	stranger := limitPod("ns", "stranger", "node-2", "tier=none", v4(2, 8))
	s.Pods = append(s.Pods, target, member, stranger)
	var ps ports
	for i := range nPorts {
		switch i % 3 {
		case 0, 1:
			ps = append(ps, num(tcp, int32(2*i+1))) // odd ports: nothing merges
		default:
			ps = append(ps, num(udp, int32(2*i+1)))
		}
	}
	ps = append(ps, rng(tcp, 60000, 60100))
	var pe peers
	for i := range nPeers {
		switch i % 3 {
		case 0:
			pe = append(pe, blockPeer(fmt.Sprintf("172.16.%d.%d/32", i>>8, i&0xff)))
		case 1:
			cidr := fmt.Sprintf("172.%d.%d.0/24", 20+i>>8, i&0xff)
			pe = append(pe, blockPeer(cidr, strings.Replace(cidr, ".0/24", ".4/32", 1)))
		default:
			pe = append(pe, podPeer(sel(fmt.Sprintf("tier=t%d", i))))
		}
	}
	s.Policies = append(s.Policies, np("ns", "huge", sel("app=target"), ingressOnly, []in{{From: pe, Ports: ps}}, nil))
	lc := limitCase{name: fmt.Sprintf("one policy with %d ports and %d peers", len(ps), len(pe)), snap: s}
	to := Endpoint{target, target.IPs[0]}
	outside := func(a string) Endpoint { return Endpoint{IP: netip.MustParseAddr(a)} }
	lc.probes = []limitProbe{
		{outside("172.16.0.3"), to, plan.TCP, 1, true},
		{outside("172.16.0.3"), to, plan.TCP, 2, false},
		{outside("172.16.0.3"), to, plan.UDP, 5, true},
		{outside("172.16.0.3"), to, plan.TCP, 5, false},
		{outside("172.16.0.4"), to, plan.TCP, 1, false},
		{outside("172.20.1.9"), to, plan.TCP, 60050, true},
		{outside("172.20.1.4"), to, plan.TCP, 60050, false},    // the except of peer 1
		{outside("172.27.204.200"), to, plan.TCP, 60050, true}, // peer 1996's block
		{Endpoint{member, member.IPs[0]}, to, plan.TCP, 3, true},
		{Endpoint{stranger, stranger.IPs[0]}, to, plan.TCP, 3, false},
	}
	return lc
}

// longestNames: a namespace name of 63 characters, pod and policy names of
// 253, label keys of a 253-character prefix and a 63-character name, values
// of 63, and a 15-character named port.
func longestNames() limitCase {
	label := func(c byte) string { return strings.Repeat(string(c), 63) }
	subdomain := func(c byte) string {
		parts := []string{label(c), label(c), label(c), strings.Repeat(string(c), 61)} // 63*3 + 61 + 3 dots = 253
		return strings.Join(parts, ".")
	}
	ns, pod, pol := label('n'), subdomain('p'), subdomain('q')
	key := subdomain('k') + "/" + label('l')
	s := &cluster.Snapshot{
		Nodes:      []*cluster.Node{limitNode(1), limitNode(2)},
		Namespaces: []*cluster.Namespace{{Name: ns, Labels: lbls(key + "=" + label('v') + "," + corev1.LabelMetadataName + "=" + ns)}},
	}
	port := "abcdefghijklmno" // IANA_SVC_NAME: at most 15
	target := limitPod(ns, pod, "node-1", key+"="+label('t'), v4(1, 1))
	target.Ports = []cluster.ContainerPort{cport(port, tcp, 8443)}
	client := limitPod(ns, subdomain('c'), "node-2", key+"="+label('c'), v4(2, 1))
	other := limitPod(ns, subdomain('o'), "node-2", key+"="+label('o'), v4(2, 2))
	s.Pods = append(s.Pods, target, client, other)
	s.Policies = append(s.Policies, np(ns, pol, sel(key+"="+label('t')), ingressOnly,
		[]in{{From: peers{bothPeer(sel(key+"="+label('v')), sel(key+"="+label('c')))}, Ports: ports{named(tcp, port)}}}, nil))
	to := Endpoint{target, target.IPs[0]}
	return limitCase{name: "names and labels at their maximum length", snap: s, probes: []limitProbe{
		{Endpoint{client, client.IPs[0]}, to, plan.TCP, 8443, true},
		{Endpoint{client, client.IPs[0]}, to, plan.TCP, 80, false},
		{Endpoint{other, other.IPs[0]}, to, plan.TCP, 8443, false},
	}}
}

// manyAddresses: a selected pod and a peer pod with n addresses of each
// family; every address of the peer is allowed in, to every address of the
// target, and no address of a third pod is.
func manyAddresses(n int) limitCase {
	s := &cluster.Snapshot{Nodes: []*cluster.Node{limitNode(1), limitNode(2)}}
	many := func(node, base int) []netip.Addr {
		var out []netip.Addr
		for i := range n {
			out = append(out, v4(node, base+i), netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(node), 14: byte((base + i) >> 8), 15: byte(base + i)}))
		}
		return out
	}
	target := limitPod("ns", "target", "node-1", "app=target", many(1, 100)...)
	peer := limitPod("ns", "peer", "node-2", "app=peer", many(2, 100)...)
	other := limitPod("ns", "other", "node-2", "app=other", many(2, 300)...)
	s.Pods = append(s.Pods, target, peer, other)
	s.Policies = append(s.Policies, np("ns", "allow-peer", sel("app=target"), ingressOnly,
		[]in{{From: peers{podPeer(sel("app=peer"))}, Ports: ports{num(tcp, 80)}}}, nil))
	lc := limitCase{name: fmt.Sprintf("pods with %d addresses of each family", n), snap: s}
	for i, a := range peer.IPs {
		b := target.IPs[(i*7)%len(target.IPs)]
		if a.Is4() != b.Is4() {
			continue
		}
		lc.probes = append(lc.probes,
			limitProbe{Endpoint{peer, a}, Endpoint{target, b}, plan.TCP, 80, true},
			limitProbe{Endpoint{peer, a}, Endpoint{target, b}, plan.TCP, 81, false},
			limitProbe{Endpoint{other, other.IPs[i]}, Endpoint{target, b}, plan.TCP, 80, false})
	}
	return lc
}

// TestObjectsAtTheLimits: every policy is one the API server accepts; the
// compile reports no problem; the plans and the reference decide every probe
// as the case says; the incremental Compiler, loaded and then given one more
// change, equals Compile. Compile times and plan sizes are logged (the
// benchmark below measures them).
func TestObjectsAtTheLimits(t *testing.T) {
	for _, lc := range limitCases() {
		t.Run(lc.name, func(t *testing.T) {
			for _, p := range lc.snap.Policies {
				if errs := Validate(p); len(errs) > 0 {
					t.Fatalf("policy %s/%.20s... is not one the API server accepts: %v", p.Namespace, p.Name, errs)
				}
			}
			start := time.Now()
			plans := planCache(lc.snap, Options{})
			pl := plans("node-1")
			took := time.Since(start)
			if len(pl.Problems) > 0 {
				t.Fatalf("problems: %v", pl.Problems)
			}
			for _, pr := range lc.probes {
				ref := Allowed(lc.snap, pr.from, pr.to, pr.proto, pr.port)
				got := planAllowed(plans, pr.from, pr.to, pr.proto, pr.port)
				if ref != pr.want || got != pr.want {
					t.Fatalf("%s -> %s %v/%d: reference %v, plan %v, want %v", describe(pr.from), describe(pr.to), pr.proto, pr.port, ref, got, pr.want)
				}
			}
			c := NewCompiler("node-1", Options{})
			c.Load(lc.snap)
			requireSamePlan(t, c, Options{}, "loaded")
			extra := np("ns", "extra", sel(""), egressOnly, nil, []out{{Ports: ports{num(udp, 53)}}})
			c.SetPolicy(extra)
			requireSamePlan(t, c, Options{}, "after one more policy")
			st := planStats(pl)
			t.Logf("compile %v; %d probes; %d profiles, %d port classes at most, %d ranges in all sets (%d in distinct sets)",
				took, len(lc.probes), len(pl.Profiles), st.maxClasses, st.totalRanges, st.distinctRanges)
		})
	}
}

// BenchmarkObjectsAtTheLimits measures the compile of node-1's plan for
// each limit case, with the plan's shape.
func BenchmarkObjectsAtTheLimits(b *testing.B) {
	for _, lc := range limitCases() {
		b.Run(strings.ReplaceAll(lc.name, " ", "_"), func(b *testing.B) {
			var pl *plan.Plan
			cpu := cpuTime()
			for b.Loop() {
				pl = Compile(lc.snap, "node-1", Options{})
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			st := planStats(pl)
			b.ReportMetric(float64(len(pl.Profiles)), "profiles")
			b.ReportMetric(float64(st.maxClasses), "max-port-classes")
			b.ReportMetric(float64(st.totalRanges), "total-ranges")
			b.ReportMetric(float64(st.distinctRanges), "distinct-ranges")
		})
	}
}
