package policy

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// probe is one connection and the verdict the NetworkPolicy API gives it.
type probe struct {
	from, to string // "ns/pod" (IPv4), "6:ns/pod" (IPv6) or an address
	proto    corev1.Protocol
	port     uint16
	want     bool
}

func (p probe) String() string {
	verdict := "deny"
	if p.want {
		verdict = "allow"
	}
	return fmt.Sprintf("%s -> %s %s/%d should %s", p.from, p.to, p.proto, p.port, verdict)
}

type semanticsCase struct {
	name     string
	policies []*networkingv1.NetworkPolicy
	mutate   func(*cluster.Snapshot)
	probes   []probe
}

// runSemantics checks every probe against both the reference evaluator and
// the compiled plans of the two nodes: the expected verdicts are written by
// hand from the API documentation, so a shared mistake cannot hide.
func runSemantics(t *testing.T, cases []semanticsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fixture()
			if tc.mutate != nil {
				tc.mutate(s)
			}
			s.Policies = tc.policies
			plans := planCache(s, Options{})
			for _, p := range tc.probes {
				from, to := endpoint(t, s, p.from), endpoint(t, s, p.to)
				proto := protoOf(p.proto)
				if got := Allowed(s, from, to, proto, p.port); got != p.want {
					t.Errorf("reference evaluator: %v, got %v", p, got)
				}
				if got := planAllowed(plans, from, to, proto, p.port); got != p.want {
					t.Errorf("compiled plan: %v, got %v", p, got)
				}
			}
		})
	}
}

func TestIsolationAndPolicyTypes(t *testing.T) {
	runSemantics(t, []semanticsCase{
		{name: "no policy allows everything", probes: []probe{
			{"x/b", "x/a", tcp, 80, true},
			{"203.0.113.9", "y/a", udp, 9, true},
			{"6:x/a", "6:y/b", sctp, 1, true},
		}},
		{name: "empty podSelector selects every pod of its namespace only",
			policies: []*networkingv1.NetworkPolicy{np("x", "deny", sel(""), ingressOnly, nil, nil)},
			probes: []probe{
				{"x/b", "x/a", tcp, 80, false},
				{"y/a", "x/c", tcp, 80, false},
				{"x/a", "y/a", tcp, 80, true},
				{"x/a", "y/b", udp, 53, true},
			}},
		{name: "ingress: [] without policyTypes denies all ingress",
			policies: []*networkingv1.NetworkPolicy{np("x", "d", sel("app=a"), nil, []in{}, nil)},
			probes: []probe{
				{"x/b", "x/a", tcp, 80, false},
				{"x/a", "x/b", tcp, 8080, true},
			}},
		{name: "a rule {} allows everyone on every port",
			policies: []*networkingv1.NetworkPolicy{np("x", "all", sel("app=a"), nil, []in{{}}, nil)},
			probes: []probe{
				{"y/b", "x/a", tcp, 1234, true},
				{"203.0.113.9", "x/a", udp, 5, true},
				{"6:y/b", "6:x/a", sctp, 9, true},
			}},
		{name: "egress rules without policyTypes isolate egress too",
			policies: []*networkingv1.NetworkPolicy{np("x", "e", sel("app=a"), nil, nil,
				[]out{{To: peers{podPeer(sel("app=b"))}}})},
			probes: []probe{
				{"x/a", "x/b", tcp, 8080, true},
				{"x/a", "y/a", tcp, 80, false},
				{"x/b", "x/a", tcp, 80, false}, // Ingress is always defaulted in, with no rule
			}},
		{name: "egress: [] without policyTypes does not isolate egress",
			policies: []*networkingv1.NetworkPolicy{np("x", "e", sel("app=a"), nil, nil, []out{})},
			probes: []probe{
				{"x/a", "y/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 80, false},
			}},
		{name: "policyTypes Egress alone ignores ingress rules and leaves ingress open",
			policies: []*networkingv1.NetworkPolicy{np("x", "e", sel("app=a"), egressOnly,
				[]in{{From: peers{podPeer(sel("app=b"))}}}, nil)},
			probes: []probe{
				{"x/a", "x/b", tcp, 8080, false},
				{"y/a", "x/a", tcp, 80, true},
			}},
		{name: "isolation is per direction",
			policies: []*networkingv1.NetworkPolicy{np("x", "i", sel("app=a"), ingressOnly, nil, nil)},
			probes: []probe{
				{"x/a", "y/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 80, false},
			}},
		{name: "both ends must allow",
			policies: []*networkingv1.NetworkPolicy{
				np("x", "out", sel("app=a"), egressOnly, nil, []out{{To: peers{nsPeer(sel("team=red"))}}}),
				np("y", "in", sel("app=b"), nil, []in{{From: peers{bothPeer(sel("team=blue"), sel("app=c"))}}}, nil),
			},
			probes: []probe{
				{"x/a", "y/b", tcp, 8080, false}, // x/a may send, y/b refuses
				{"x/c", "y/b", tcp, 8080, true},
				{"x/a", "y/a", tcp, 80, true},
				{"x/a", "x/b", tcp, 8080, false}, // y/b's rule is irrelevant, x/a may not send
			}},
		{name: "several policies on one pod add up",
			policies: []*networkingv1.NetworkPolicy{
				np("x", "web", sel("app=a"), nil, []in{{From: peers{podPeer(sel("app=b"))}, Ports: ports{num("", 80)}}}, nil),
				np("x", "dns", sel("app=a"), nil, []in{{From: peers{nsPeer(sel("team=red"))}, Ports: ports{num(udp, 53)}}}, nil),
			},
			probes: []probe{
				{"x/b", "x/a", tcp, 80, true},
				{"x/b", "x/a", udp, 53, false},
				{"y/a", "x/a", udp, 53, true},
				{"y/a", "x/a", tcp, 80, false},
			}},
		{name: "traffic between a pod and its own node is always allowed",
			policies: []*networkingv1.NetworkPolicy{np("x", "deny", sel(""), bothTypes, nil, nil)},
			probes: []probe{
				{"192.168.0.1", "x/a", tcp, 80, true},
				{"fd00:ff::1", "6:x/a", tcp, 80, true},
				{"x/a", "192.168.0.1", tcp, 10250, true},
				{"192.168.0.2", "x/a", tcp, 80, false}, // another node is just an address
				{"x/a", "192.168.0.2", tcp, 10250, false},
				{"192.168.0.2", "x/c", tcp, 80, true}, // x/c lives on node-2
				{"x/a", "x/b", tcp, 8080, false},
				{"x/a", "x/a", tcp, 80, true}, // a pod reaching itself never leaves its namespace
				{"6:x/a", "6:x/a", udp, 53, true},
			}},
	})
}

func TestPeers(t *testing.T) {
	ingressFrom := func(ps ...networkingv1.NetworkPolicyPeer) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, []in{{From: ps}}, nil)}
	}
	runSemantics(t, []semanticsCase{
		{name: "podSelector peer stays in the policy's namespace", policies: ingressFrom(podPeer(sel("app=b"))),
			probes: []probe{
				{"x/b", "x/a", tcp, 80, true},
				{"y/b", "x/a", tcp, 80, false},
			}},
		{name: "namespaceSelector peer is every pod of the selected namespaces", policies: ingressFrom(nsPeer(sel("team=red"))),
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
				{"y/b", "x/a", tcp, 80, true},
				{"x/b", "x/a", tcp, 80, false},
			}},
		{name: "both selectors in one peer must both match", policies: ingressFrom(bothPeer(sel("team=red"), sel("app=b"))),
			probes: []probe{
				{"y/b", "x/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 80, false},
				{"x/b", "x/a", tcp, 80, false},
			}},
		{name: "separate peers are alternatives", policies: ingressFrom(nsPeer(sel("team=red")), podPeer(sel("app=b"))),
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
				{"x/b", "x/a", tcp, 80, true},
				{"x/c", "x/a", tcp, 80, false},
			}},
		{name: "empty namespaceSelector is every namespace", policies: ingressFrom(bothPeer(sel(""), sel("app=b"))),
			probes: []probe{
				{"y/b", "x/a", tcp, 80, true},
				{"x/b", "x/a", tcp, 80, true},
				{"x/c", "x/a", tcp, 80, false},
				{"z/a", "x/a", tcp, 80, false},
			}},
		{name: "empty podSelector peer is every pod of the policy's namespace", policies: ingressFrom(podPeer(sel(""))),
			probes: []probe{
				{"x/c", "x/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 80, false},
			}},
		{name: "matchExpressions In and NotIn; NotIn matches a missing label",
			policies: []*networkingv1.NetworkPolicy{np("x", "p", expr("app", metav1.LabelSelectorOpIn, "a", "b"), nil,
				[]in{{From: peers{nsPeer(expr("team", metav1.LabelSelectorOpNotIn, "blue"))}}}, nil)},
			probes: []probe{
				{"y/a", "x/b", tcp, 8080, true},
				{"z/a", "x/b", tcp, 8080, true},
				{"x/c", "x/b", tcp, 8080, false},
				{"x/a", "x/c", tcp, 8080, true}, // x/c is not selected
			}},
		{name: "matchExpressions Exists", policies: ingressFrom(nsPeer(expr("team", metav1.LabelSelectorOpExists))),
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
				{"z/a", "x/a", tcp, 80, false},
			}},
		{name: "matchExpressions DoesNotExist", policies: ingressFrom(nsPeer(expr("team", metav1.LabelSelectorOpDoesNotExist))),
			probes: []probe{
				{"y/a", "x/a", tcp, 80, false},
				{"z/a", "x/a", tcp, 80, true},
			}},
		{name: "a namespace without a Namespace object has only its name label",
			policies: ingressFrom(nsPeer(sel("kubernetes.io/metadata.name=z"))),
			probes: []probe{
				{"z/a", "x/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 80, false},
			}},
		{name: "the name label is there even when the Namespace object lacks it",
			policies: ingressFrom(nsPeer(sel("kubernetes.io/metadata.name=y"))),
			mutate: func(s *cluster.Snapshot) {
				delete(s.Namespaces[1].Labels, corev1.LabelMetadataName)
			},
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
				{"x/b", "x/a", tcp, 80, false},
			}},
		{name: "the first Namespace object of a name counts", policies: ingressFrom(nsPeer(sel("team=red"))),
			mutate: func(s *cluster.Snapshot) {
				s.Namespaces = append(s.Namespaces, &cluster.Namespace{Name: "y", Labels: lbls("team=blue")})
			},
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
			}},
		{name: "ipBlock matches pod addresses and other addresses, minus except",
			policies: ingressFrom(blockPeer("10.2.0.0/24", "10.2.0.16/28")),
			probes: []probe{
				{"x/c", "x/a", tcp, 80, true},  // 10.2.0.12
				{"y/a", "x/a", tcp, 80, false}, // 10.2.0.20, in the except
				{"z/a", "x/a", tcp, 80, false}, // 10.2.0.30, in the except
				{"10.2.0.99", "x/a", tcp, 80, true},
				{"10.1.0.11", "x/a", tcp, 80, false},
				{"6:x/c", "6:x/a", tcp, 80, false}, // an IPv4 block says nothing of IPv6
			}},
		{name: "IPv6 ipBlock with except", policies: ingressFrom(blockPeer("fd00:2::/64", "fd00:2::20/128")),
			probes: []probe{
				{"6:x/c", "6:x/a", tcp, 80, true},
				{"6:y/a", "6:x/a", tcp, 80, false},
				{"x/c", "x/a", tcp, 80, false},
			}},
		{name: "selector peers cover every address of a dual-stack pod", policies: ingressFrom(podPeer(sel("app=b"))),
			probes: []probe{
				{"x/b", "x/a", tcp, 80, true},
				{"6:x/b", "6:x/a", tcp, 80, true},
				{"6:x/c", "6:x/a", tcp, 80, false},
			}},
	})
}

func TestPorts(t *testing.T) {
	ingressOn := func(ps ...networkingv1.NetworkPolicyPort) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, []in{{Ports: ps}}, nil)}
	}
	runSemantics(t, []semanticsCase{
		{name: "a port without protocol is TCP", policies: ingressOn(num("", 80)),
			probes: []probe{
				{"x/b", "x/a", tcp, 80, true},
				{"x/b", "x/a", udp, 80, false},
				{"x/b", "x/a", sctp, 80, false},
				{"x/b", "x/a", tcp, 81, false},
			}},
		{name: "UDP and SCTP ports", policies: ingressOn(num(udp, 53), num(sctp, 7000)),
			probes: []probe{
				{"x/b", "x/a", udp, 53, true},
				{"x/b", "x/a", sctp, 7000, true},
				{"x/b", "x/a", tcp, 53, false},
				{"x/b", "x/a", udp, 7000, false},
			}},
		{name: "endPort range is inclusive", policies: ingressOn(rng(tcp, 1000, 2000)),
			probes: []probe{
				{"x/b", "x/a", tcp, 999, false},
				{"x/b", "x/a", tcp, 1000, true},
				{"x/b", "x/a", tcp, 2000, true},
				{"x/b", "x/a", tcp, 2001, false},
			}},
		{name: "range up to 65535 and overlapping entries", policies: ingressOn(rng(tcp, 65000, 65535), rng(tcp, 64000, 65100), num(tcp, 64999)),
			probes: []probe{
				{"x/b", "x/a", tcp, 65535, true},
				{"x/b", "x/a", tcp, 63999, false},
				{"x/b", "x/a", tcp, 64000, true},
				{"x/b", "x/a", tcp, 65534, true},
			}},
		{name: "a protocol without port means every port of it", policies: ingressOn(allOf(udp)),
			probes: []probe{
				{"x/b", "x/a", udp, 0, true},
				{"x/b", "x/a", udp, 65535, true},
				{"x/b", "x/a", tcp, 80, false},
			}},
		{name: "a named port resolves against each selected pod",
			policies: []*networkingv1.NetworkPolicy{np("x", "p", expr("app", metav1.LabelSelectorOpIn, "a", "b"), nil,
				[]in{{Ports: ports{named("", "http")}}}, nil)},
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 8080, false},
				{"y/a", "x/b", tcp, 8080, true},
				{"y/a", "x/b", tcp, 80, false},
				{"6:y/a", "6:x/b", tcp, 8080, true},
			}},
		{name: "a named port served with another protocol matches nothing", policies: ingressOn(named(tcp, "dns")),
			probes: []probe{
				{"y/a", "x/a", tcp, 53, false},
				{"y/a", "x/a", udp, 53, false},
			}},
		{name: "a named port with the served protocol matches", policies: ingressOn(named(udp, "dns"), named(sctp, "sync")),
			probes: []probe{
				{"y/a", "x/a", udp, 53, true},
				{"y/a", "x/a", sctp, 7000, false}, // x/a does not serve sync
			}},
		{name: "a named port the pod does not serve matches nothing there, the pod stays isolated",
			policies: []*networkingv1.NetworkPolicy{np("x", "p", sel("app=c"), nil, []in{{Ports: ports{named("", "http")}}}, nil)},
			probes: []probe{
				{"y/a", "x/c", tcp, 80, false},
				{"y/a", "x/c", tcp, 8080, false},
			}},
		{name: "named and numeric ports in one rule", policies: ingressOn(named("", "http"), num("", 9000)),
			probes: []probe{
				{"y/a", "x/a", tcp, 80, true},
				{"y/a", "x/a", tcp, 9000, true},
				{"y/a", "x/a", tcp, 8080, false},
			}},
		{name: "ports and peers of one rule go together",
			policies: []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, []in{
				{From: peers{podPeer(sel("app=b"))}, Ports: ports{num("", 80)}},
				{From: peers{nsPeer(sel("team=red"))}, Ports: ports{num(udp, 53)}},
			}, nil)},
			probes: []probe{
				{"x/b", "x/a", tcp, 80, true},
				{"x/b", "x/a", udp, 53, false},
				{"y/a", "x/a", udp, 53, true},
				{"y/a", "x/a", tcp, 80, false},
			}},
	})
}

func TestEgressNamedPorts(t *testing.T) {
	egressTo := func(to peers, ps ...networkingv1.NetworkPolicyPort) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), egressOnly, nil, []out{{To: to, Ports: ps}})}
	}
	runSemantics(t, []semanticsCase{
		{name: "resolved against each destination pod", policies: egressTo(peers{podPeer(sel(""))}, named("", "http")),
			probes: []probe{
				{"x/a", "x/b", tcp, 8080, true},
				{"x/a", "x/b", tcp, 80, false},
				{"x/a", "x/c", tcp, 80, false}, // x/c serves nothing
				{"x/a", "y/a", tcp, 80, false}, // not a peer
				{"6:x/a", "6:x/b", tcp, 8080, true},
			}},
		{name: "with an ipBlock: only pods inside the block that serve the name",
			policies: egressTo(peers{blockPeer("10.0.0.0/8", "10.2.0.28/30")}, named("", "http")),
			probes: []probe{
				{"x/a", "y/a", tcp, 80, true},
				{"x/a", "y/b", tcp, 8080, true},
				{"x/a", "z/a", tcp, 80, false},         // 10.2.0.30, in the except
				{"x/a", "10.2.0.99", tcp, 80, false},   // no pod there
				{"x/a", "6:y/a", tcp, 80, false},       // not in the block
				{"x/a", "x/c", tcp, 80, false},         // serves nothing
				{"x/a", "y/b", tcp, 80, false},         // y/b's http is 8080
				{"x/a", "10.2.0.99", tcp, 8080, false}, // no pod there
			}},
		{name: "without to: any pod in the cluster serving the name", policies: egressTo(nil, named("", "http")),
			probes: []probe{
				{"x/a", "y/a", tcp, 80, true},
				{"x/a", "y/b", tcp, 8080, true},
				{"x/a", "6:y/b", tcp, 8080, true},
				{"x/a", "z/a", tcp, 80, true},
				{"x/a", "203.0.113.9", tcp, 80, false},
				{"x/a", "x/c", tcp, 80, false},
				{"x/a", "y/a", tcp, 8080, false},
			}},
		{name: "egress named port with the wrong protocol", policies: egressTo(nil, named(tcp, "dns"), named(udp, "dns")),
			probes: []probe{
				{"x/a", "y/a", udp, 53, true},
				{"x/a", "y/a", tcp, 53, false},
			}},
		{name: "several peers resolve separately", policies: egressTo(peers{nsPeer(sel("team=red")), podPeer(sel("app=b"))}, named("", "http")),
			probes: []probe{
				{"x/a", "y/a", tcp, 80, true},
				{"x/a", "y/b", tcp, 8080, true},
				{"x/a", "x/b", tcp, 8080, true},
				{"x/a", "z/a", tcp, 80, false},
			}},
	})
}

func TestPodsOutsidePolicy(t *testing.T) {
	addPods := func(s *cluster.Snapshot) {
		s.Pods = append(s.Pods,
			&cluster.Pod{Namespace: "x", Name: "h", Labels: lbls("app=b"), NodeName: "node-2", HostNetwork: true,
				Phase: corev1.PodRunning, IPs: addrs("192.168.0.2", "fd00:ff::2"), Ports: []cluster.ContainerPort{cport("http", tcp, 80)}},
			&cluster.Pod{Namespace: "x", Name: "f", Labels: lbls("app=b"), NodeName: "node-1",
				Phase: corev1.PodSucceeded, IPs: addrs("10.1.0.50"), Ports: []cluster.ContainerPort{cport("http", tcp, 80)}},
			&cluster.Pod{Namespace: "x", Name: "n", Labels: lbls("app=b"), NodeName: "node-1", Phase: corev1.PodPending},
		)
	}
	runSemantics(t, []semanticsCase{
		{name: "host-network and finished pods are not peers of selectors", mutate: addPods,
			policies: []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, []in{{From: peers{podPeer(sel("app=b"))}}}, nil)},
			probes: []probe{
				{"x/b", "x/a", tcp, 80, true},
				{"x/h", "x/a", tcp, 80, false},
				{"10.1.0.50", "x/a", tcp, 80, false},
			}},
		{name: "an ipBlock still matches a host-network pod's node address", mutate: addPods,
			policies: []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), nil, []in{{From: peers{blockPeer("192.168.0.0/24")}}}, nil)},
			probes: []probe{
				{"x/h", "x/a", tcp, 80, true},
				{"x/b", "x/a", tcp, 80, false},
			}},
		{name: "host-network and finished pods are never selected", mutate: addPods,
			policies: []*networkingv1.NetworkPolicy{np("x", "deny", sel(""), bothTypes, nil, nil)},
			probes: []probe{
				{"y/a", "x/h", tcp, 80, true},
				{"y/a", "10.1.0.50", tcp, 80, true},
				{"x/a", "y/a", tcp, 80, false},
			}},
		{name: "egress named ports ignore host-network and finished pods", mutate: addPods,
			policies: []*networkingv1.NetworkPolicy{np("x", "p", sel("app=a"), egressOnly, nil, []out{{Ports: ports{named("", "http")}}})},
			probes: []probe{
				{"x/a", "x/h", tcp, 80, false}, // node-2's address, not x/a's node
				{"x/a", "10.1.0.50", tcp, 80, false},
				{"x/a", "y/a", tcp, 80, true},
			}},
	})
}
