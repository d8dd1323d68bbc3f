package policy

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// A small language for test fixtures, so tables read like the manifests
// they stand for.

func lbls(s string) labels.Set {
	out := labels.Set{}
	if s == "" {
		return out
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// sel parses "k=v,k2=v2" into matchLabels; "" is the empty selector.
func sel(s string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: lbls(s)}
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func podPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: s}
}

func nsPeer(s *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: s}
}

func bothPeer(ns, pod *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: ns, PodSelector: pod}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func protoPtr(p corev1.Protocol) *corev1.Protocol {
	if p == "" {
		return nil
	}
	return &p
}

// num is a numeric port; proto "" leaves the protocol out (TCP).
func num(proto corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto), Port: &p}
}

func rng(proto corev1.Protocol, from, to int32) networkingv1.NetworkPolicyPort {
	out := num(proto, from)
	out.EndPort = &to
	return out
}

func named(proto corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto), Port: &p}
}

func allOf(proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: protoPtr(proto)}
}

type in = networkingv1.NetworkPolicyIngressRule
type out = networkingv1.NetworkPolicyEgressRule
type peers = []networkingv1.NetworkPolicyPeer
type ports = []networkingv1.NetworkPolicyPort

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	bothTypes   = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
)

// np builds a policy; ingress and egress are nil unless given.
func np(ns, name string, podSel *metav1.LabelSelector, types []networkingv1.PolicyType, ingress []in, egress []out) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *podSel, PolicyTypes: types, Ingress: ingress, Egress: egress,
		},
	}
}

func cport(name string, proto corev1.Protocol, n int32) cluster.ContainerPort {
	return cluster.ContainerPort{Name: name, Port: n, Protocol: proto}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// fixture is the cluster most table cases run against:
//
//	node-1 (192.168.0.1, fd00:ff::1), pods 10.1.0.0/24 and fd00:1::/64
//	node-2 (192.168.0.2, fd00:ff::2), pods 10.2.0.0/24 and fd00:2::/64
//	namespace x {team=blue}: a (app=a) and b (app=b) on node-1, c (app=c) on node-2
//	namespace y {team=red}:  a (app=a) on node-2, b (app=b) on node-1
//	namespace z: no Namespace object; a (app=a) on node-2, IPv4 only
//
// Pods labelled app=a serve http on TCP 80 and dns on UDP 53, app=b serves
// http on TCP 8080 and sync on SCTP 7000, app=c serves nothing.
func fixture() *cluster.Snapshot {
	pod := func(ns, name, node string, ips []netip.Addr) *cluster.Pod {
		app := name
		p := &cluster.Pod{Namespace: ns, Name: name, Labels: labels.Set{"app": app}, NodeName: node,
			Phase: corev1.PodRunning, IPs: ips}
		switch app {
		case "a":
			p.Ports = []cluster.ContainerPort{cport("http", tcp, 80), cport("dns", udp, 53)}
		case "b":
			p.Ports = []cluster.ContainerPort{cport("http", tcp, 8080), cport("sync", sctp, 7000)}
		}
		return p
	}
	return &cluster.Snapshot{
		Namespaces: []*cluster.Namespace{
			{Name: "x", Labels: labels.Set{"team": "blue", corev1.LabelMetadataName: "x"}},
			{Name: "y", Labels: labels.Set{"team": "red", corev1.LabelMetadataName: "y"}},
		},
		Nodes: []*cluster.Node{
			{Name: "node-1", Addresses: addrs("192.168.0.1", "fd00:ff::1"),
				PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd00:1::/64")}},
			{Name: "node-2", Addresses: addrs("192.168.0.2", "fd00:ff::2"),
				PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("fd00:2::/64")}},
		},
		Pods: []*cluster.Pod{
			pod("x", "a", "node-1", addrs("10.1.0.10", "fd00:1::10")),
			pod("x", "b", "node-1", addrs("10.1.0.11", "fd00:1::11")),
			pod("x", "c", "node-2", addrs("10.2.0.12", "fd00:2::12")),
			pod("y", "a", "node-2", addrs("10.2.0.20", "fd00:2::20")),
			pod("y", "b", "node-1", addrs("10.1.0.21", "fd00:1::21")),
			pod("z", "a", "node-2", addrs("10.2.0.30")),
		},
	}
}

func findPod(t *testing.T, s *cluster.Snapshot, key string) *cluster.Pod {
	t.Helper()
	for _, p := range s.Pods {
		if p.Key() == key {
			return p
		}
	}
	t.Fatalf("no pod %s in the snapshot", key)
	return nil
}

// endpoint resolves "ns/name" (IPv4 address, or IPv6 with a "6:" prefix) or
// a literal address.
func endpoint(t *testing.T, s *cluster.Snapshot, ref string) Endpoint {
	t.Helper()
	v6 := strings.HasPrefix(ref, "6:")
	ref = strings.TrimPrefix(ref, "6:")
	if a, err := netip.ParseAddr(ref); err == nil {
		for _, p := range s.Pods {
			for _, ip := range p.IPs {
				if ip == a && p.Enforceable() {
					return Endpoint{Pod: p, IP: a}
				}
			}
		}
		return Endpoint{IP: a}
	}
	p := findPod(t, s, ref)
	for _, ip := range p.IPs {
		if ip.Is6() == v6 {
			return Endpoint{Pod: p, IP: ip}
		}
	}
	t.Fatalf("pod %s has no address of that family", ref)
	return Endpoint{}
}

// planAllowed decides a connection from compiled plans only: the egress of
// the source's node and the ingress of the destination's node, as two
// dataplanes would.
func planAllowed(plans func(node string) *plan.Plan, from, to Endpoint, proto plan.Protocol, port uint16) bool {
	ok := true
	if from.Pod != nil {
		ok = plans(from.Pod.NodeName).AllowsEgress(from.IP, to.IP, proto, port)
	}
	if to.Pod != nil {
		ok = ok && plans(to.Pod.NodeName).AllowsIngress(from.IP, to.IP, proto, port)
	}
	return ok
}

// planCache compiles each node's plan once per snapshot.
func planCache(s *cluster.Snapshot, opts Options) func(string) *plan.Plan {
	cache := map[string]*plan.Plan{}
	return func(node string) *plan.Plan {
		if pl, ok := cache[node]; ok {
			return pl
		}
		pl := Compile(s, node, opts)
		cache[node] = pl
		return pl
	}
}

func protoOf(p corev1.Protocol) plan.Protocol {
	out, _ := ProtocolFromAPI(p)
	return out
}
