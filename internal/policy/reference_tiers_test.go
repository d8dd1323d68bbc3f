package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Fixture language for ClusterNetworkPolicies, beside helpers_test.go's.

const (
	admin    = cluster.TierAdmin
	baseline = cluster.TierBaseline
	accept   = cluster.ActionAccept
	deny     = cluster.ActionDeny
	pass     = cluster.ActionPass
)

type cnpRules = []cluster.CNPRule
type cnpPeers = []cluster.CNPPeer

func cnp(name string, tier cluster.CNPTier, prio int32, subject cluster.CNPSubject, ingress, egress cnpRules) *cluster.ClusterNetworkPolicy {
	return &cluster.ClusterNetworkPolicy{Name: name, Tier: tier, Priority: prio, Subject: subject, Ingress: ingress, Egress: egress}
}

func nsSubject(s string) cluster.CNPSubject { return cluster.CNPSubject{Namespaces: sel(s)} }

func podsSubject(ns, pod string) cluster.CNPSubject {
	return cluster.CNPSubject{Pods: &cluster.CNPPods{NamespaceSelector: *sel(ns), PodSelector: *sel(pod)}}
}

func rule(action cluster.CNPAction, peers cnpPeers, protocols ...cluster.CNPProtocol) cluster.CNPRule {
	return cluster.CNPRule{Action: action, Peers: peers, Protocols: protocols}
}

func cnpNS(s string) cluster.CNPPeer { return cluster.CNPPeer{Namespaces: sel(s)} }

func cnpPods(ns, pod string) cluster.CNPPeer {
	return cluster.CNPPeer{Pods: &cluster.CNPPods{NamespaceSelector: *sel(ns), PodSelector: *sel(pod)}}
}

func cnpNodes(s string) cluster.CNPPeer { return cluster.CNPPeer{Nodes: sel(s)} }

func cnpNets(cidrs ...string) cluster.CNPPeer { return cluster.CNPPeer{Networks: cidrs} }

// everyone is a peer list matching every pod (not other addresses).
var everyone = cnpPeers{cnpNS("")}

func tcpPort(n int32) cluster.CNPProtocol {
	return cluster.CNPProtocol{TCP: &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Number: n}}}
}

func udpPort(n int32) cluster.CNPProtocol {
	return cluster.CNPProtocol{UDP: &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Number: n}}}
}

func sctpPort(n int32) cluster.CNPProtocol {
	return cluster.CNPProtocol{SCTP: &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Number: n}}}
}

func tcpRange(start, end int32) cluster.CNPProtocol {
	return cluster.CNPProtocol{TCP: &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Range: &cluster.CNPPortRange{Start: start, End: end}}}}
}

func namedPort(name string) cluster.CNPProtocol {
	return cluster.CNPProtocol{DestinationNamedPort: name}
}

// tierConn is one connection to decide; egress and ingress, when set, must
// equal the short form of the decision of that direction (see short).
type tierConn struct {
	from, to string // as endpoint() reads them
	proto    plan.Protocol
	port     uint16
	want     bool
	egress   string
	ingress  string
}

type tiersCase struct {
	name  string
	cnps  []*cluster.ClusterNetworkPolicy
	nps   []*networkingv1.NetworkPolicy
	conns []tierConn
}

// short renders a decision as "By" or "By policy field" (the deciding rule),
// with "+pass(policy field)" for every Pass on the way.
func short(d Decision) string {
	var b strings.Builder
	b.WriteString(string(d.By))
	if d.Rule != nil {
		fmt.Fprintf(&b, " %s %s", d.Rule.Policy, d.Rule.Field)
	}
	for _, p := range d.Passed {
		fmt.Fprintf(&b, " +pass(%s %s)", p.Policy, p.Field)
	}
	return b.String()
}

// tiersFixture is fixture() with node-2 labelled zone=b and a host-network
// pod x/hn on node-2 (labelled app=a, holding node-2's addresses).
func tiersFixture() *cluster.Snapshot {
	s := fixture()
	s.Nodes[0].Labels = labels.Set{"zone": "a"}
	s.Nodes[1].Labels = labels.Set{"zone": "b"}
	s.Pods = append(s.Pods, &cluster.Pod{Namespace: "x", Name: "hn", Labels: labels.Set{"app": "a"}, NodeName: "node-2",
		HostNetwork: true, Phase: corev1.PodRunning, IPs: addrs("192.168.0.2", "fd00:ff::2"),
		Ports: []cluster.ContainerPort{cport("http", tcp, 80)}})
	return s
}

// tierEndpoint resolves like endpoint(), and "hn" or "6:hn" to the
// host-network pod with its (node) address.
func tierEndpoint(t *testing.T, s *cluster.Snapshot, ref string) Endpoint {
	t.Helper()
	if ref == "x/hn" || ref == "6:x/hn" {
		p := findPod(t, s, "x/hn")
		return Endpoint{Pod: p, IP: p.IPs[map[bool]int{false: 0, true: 1}[strings.HasPrefix(ref, "6:")]]}
	}
	return endpoint(t, s, ref)
}

func runTiers(t *testing.T, cases []tiersCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := tiersFixture()
			s.ClusterNetworkPolicies = c.cnps
			s.Policies = c.nps
			for _, conn := range c.conns {
				from, to := tierEndpoint(t, s, conn.from), tierEndpoint(t, s, conn.to)
				v := Decide(s, from, to, conn.proto, conn.port)
				what := fmt.Sprintf("%s -> %s %v/%d", conn.from, conn.to, conn.proto, conn.port)
				if v.Allowed != conn.want {
					t.Errorf("%s: allowed=%v, want %v (egress: %s; ingress: %s)", what, v.Allowed, conn.want, short(v.Egress), short(v.Ingress))
				}
				if v.Allowed != (v.Egress.Allowed && v.Ingress.Allowed) {
					t.Errorf("%s: allowed=%v but egress %v and ingress %v", what, v.Allowed, v.Egress.Allowed, v.Ingress.Allowed)
				}
				if conn.egress != "" && short(v.Egress) != conn.egress {
					t.Errorf("%s: egress decided by %q, want %q", what, short(v.Egress), conn.egress)
				}
				if conn.ingress != "" && short(v.Ingress) != conn.ingress {
					t.Errorf("%s: ingress decided by %q, want %q", what, short(v.Ingress), conn.ingress)
				}
			}
		})
	}
}

func TestTiersOrder(t *testing.T) {
	denyAllIngressX := np("x", "deny-all", sel(""), ingressOnly, nil, nil)
	allowIngressFromY := np("x", "from-y", sel(""), ingressOnly, []in{{From: peers{nsPeer(sel("team=red"))}}}, nil)
	runTiers(t, []tiersCase{
		{name: "no policies: the default allows", conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, egress: "Default", ingress: "Default"},
		}},
		{name: "admin Deny ends ingress evaluation", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("deny-y", admin, 10, nsSubject("team=blue"), cnpRules{rule(deny, cnpPeers{cnpNS("team=red")}, tcpPort(80))}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, egress: "Default", ingress: "Admin deny-y spec.ingress[0]"},
			{from: "6:y/a", to: "6:x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin deny-y spec.ingress[0]"},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 81, want: true, ingress: "Default"},
			{from: "x/b", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Default"},
		}},
		{name: "admin Accept overrides a NetworkPolicy that isolates", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("accept-y", admin, 10, nsSubject("team=blue"), cnpRules{rule(accept, cnpPeers{cnpNS("team=red")})}, nil),
		}, nps: []*networkingv1.NetworkPolicy{denyAllIngressX}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Admin accept-y spec.ingress[0]"},
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "NetworkPolicy"},
		}},
		{name: "admin Deny overrides a NetworkPolicy that allows", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("deny-y", admin, 10, nsSubject("team=blue"), cnpRules{rule(deny, cnpPeers{cnpNS("team=red")})}, nil),
		}, nps: []*networkingv1.NetworkPolicy{allowIngressFromY}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin deny-y spec.ingress[0]"},
			{from: "y/b", to: "x/a", proto: plan.UDP, port: 53, want: false, ingress: "Admin deny-y spec.ingress[0]"},
		}},
		{name: "a NetworkPolicy overrides baseline, for the pods it isolates only", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("baseline-deny", baseline, 0, nsSubject("team=blue"), cnpRules{rule(deny, everyone)}, nil),
		}, nps: []*networkingv1.NetworkPolicy{np("x", "from-y", sel("app=a"), ingressOnly, []in{{From: peers{nsPeer(sel("team=red"))}}}, nil)},
			conns: []tierConn{
				{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "NetworkPolicy"},
				{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "NetworkPolicy"},
				{from: "y/a", to: "x/c", proto: plan.TCP, port: 80, want: false, ingress: "Baseline baseline-deny spec.ingress[0]"},
			}},
		{name: "baseline Accept and Deny decide for pods no NetworkPolicy isolates", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("baseline", baseline, 5, nsSubject(""), nil, cnpRules{rule(accept, cnpPeers{cnpNS("team=red")}), rule(deny, everyone)}),
		}, conns: []tierConn{
			{from: "x/a", to: "y/a", proto: plan.TCP, port: 80, want: true, egress: "Baseline baseline spec.egress[0]"},
			{from: "x/a", to: "x/b", proto: plan.TCP, port: 80, want: false, egress: "Baseline baseline spec.egress[1]"},
			{from: "x/a", to: "203.0.113.9", proto: plan.TCP, port: 80, want: true, egress: "Default"},
		}},
	})
}

func TestTiersPass(t *testing.T) {
	passY := cnp("pass-y", admin, 10, nsSubject("team=blue"), cnpRules{rule(pass, cnpPeers{cnpNS("team=red")})}, nil)
	denyAll := cnp("deny-all", admin, 20, nsSubject("team=blue"), cnpRules{rule(deny, everyone)}, nil)
	runTiers(t, []tiersCase{
		{name: "Pass skips the rest of the admin tier", cnps: []*cluster.ClusterNetworkPolicy{denyAll, passY}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Default +pass(pass-y spec.ingress[0])"},
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin deny-all spec.ingress[0]"},
		}},
		{name: "after Pass a NetworkPolicy decides", cnps: []*cluster.ClusterNetworkPolicy{denyAll, passY},
			nps: []*networkingv1.NetworkPolicy{np("x", "deny", sel("app=a"), ingressOnly, nil, nil)}, conns: []tierConn{
				{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "NetworkPolicy +pass(pass-y spec.ingress[0])"},
				{from: "y/a", to: "x/b", proto: plan.TCP, port: 80, want: true, ingress: "Default +pass(pass-y spec.ingress[0])"},
			}},
		{name: "after Pass the baseline decides when no NetworkPolicy isolates", cnps: []*cluster.ClusterNetworkPolicy{denyAll, passY,
			cnp("baseline-deny-y", baseline, 1, nsSubject(""), cnpRules{rule(deny, cnpPeers{cnpNS("team=red")})}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Baseline baseline-deny-y spec.ingress[0] +pass(pass-y spec.ingress[0])"},
		}},
		{name: "Pass in the baseline tier skips the rest of it: the default allows", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("b1", baseline, 1, nsSubject(""), nil, cnpRules{rule(pass, cnpPeers{cnpPods("team=red", "app=a")})}),
			cnp("b2", baseline, 2, nsSubject(""), nil, cnpRules{rule(deny, everyone)}),
		}, conns: []tierConn{
			{from: "x/b", to: "y/a", proto: plan.TCP, port: 80, want: true, egress: "Default +pass(b1 spec.egress[0])"},
			{from: "x/b", to: "y/b", proto: plan.TCP, port: 80, want: false, egress: "Baseline b2 spec.egress[0]"},
		}},
	})
}

func TestTiersPriorityAndRuleOrder(t *testing.T) {
	acceptY := func(name string, prio int32) *cluster.ClusterNetworkPolicy {
		return cnp(name, admin, prio, nsSubject("team=blue"), cnpRules{rule(accept, cnpPeers{cnpNS("team=red")})}, nil)
	}
	denyAll := func(name string, prio int32) *cluster.ClusterNetworkPolicy {
		return cnp(name, admin, prio, nsSubject("team=blue"), cnpRules{rule(deny, everyone)}, nil)
	}
	runTiers(t, []tiersCase{
		{name: "lower priority value first", cnps: []*cluster.ClusterNetworkPolicy{denyAll("deny", 20), acceptY("accept", 10)}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Admin accept spec.ingress[0]"},
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin deny spec.ingress[0]"},
		}},
		{name: "lower priority value first, swapped", cnps: []*cluster.ClusterNetworkPolicy{acceptY("accept", 20), denyAll("deny", 10)}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin deny spec.ingress[0]"},
		}},
		// kube-fence's choice for equal priorities: metadata.name in byte
		// order, so exactly one rule decides, the same on every node.
		{name: "equal priorities: by name", cnps: []*cluster.ClusterNetworkPolicy{denyAll("b-deny", 7), acceptY("a-accept", 7)}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Admin a-accept spec.ingress[0]"},
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin b-deny spec.ingress[0]"},
		}},
		{name: "equal priorities: by name, renamed", cnps: []*cluster.ClusterNetworkPolicy{acceptY("z-accept", 7), denyAll("b-deny", 7)}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin b-deny spec.ingress[0]"},
		}},
		{name: "equal priorities: both applied when they do not overlap", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p1", admin, 15, nsSubject("team=blue"), cnpRules{rule(deny, cnpPeers{cnpNS("team=red")}, tcpPort(80))}, nil),
			cnp("p2", admin, 15, nsSubject("team=blue"), cnpRules{rule(deny, cnpPeers{cnpNS("kubernetes.io/metadata.name=z")}, tcpPort(80))}, nil),
			cnp("p3", admin, 15, nsSubject("team=red"), cnpRules{rule(deny, cnpPeers{cnpNS("kubernetes.io/metadata.name=z")}, tcpPort(8080))}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin p1 spec.ingress[0]"},
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin p2 spec.ingress[0]"},
			{from: "z/a", to: "y/a", proto: plan.TCP, port: 8080, want: false, ingress: "Admin p3 spec.ingress[0]"},
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 8080, want: true},
			{from: "z/a", to: "y/a", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "rule order within a policy: the first match decides", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), cnpRules{rule(accept, cnpPeers{cnpNS("team=red")}, tcpPort(80)), rule(deny, everyone)}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Admin p spec.ingress[0]"},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 81, want: false, ingress: "Admin p spec.ingress[1]"},
		}},
		{name: "rule order within a policy, swapped", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), cnpRules{rule(deny, everyone), rule(accept, cnpPeers{cnpNS("team=red")}, tcpPort(80))}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin p spec.ingress[0]"},
		}},
		{name: "the admin tier always comes before the baseline tier, whatever the priorities", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("b", baseline, 0, nsSubject("team=blue"), cnpRules{rule(accept, everyone)}, nil), denyAll("a", 1000),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: "Admin a spec.ingress[0]"},
		}},
	})
}

func TestTiersDirections(t *testing.T) {
	runTiers(t, []tiersCase{
		{name: "egress Accept at the source does not skip ingress at the destination", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("out", admin, 1, nsSubject("team=red"), nil, cnpRules{rule(accept, everyone)}),
			cnp("in", admin, 2, nsSubject("team=blue"), cnpRules{rule(deny, cnpPeers{cnpNS("team=red")})}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, egress: "Admin out spec.egress[0]", ingress: "Admin in spec.ingress[0]"},
		}},
		{name: "egress Deny at the source wins over ingress Accept", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("out", admin, 2, nsSubject("team=red"), nil, cnpRules{rule(deny, cnpPeers{cnpNS("team=blue")})}),
			cnp("in", admin, 1, nsSubject("team=blue"), cnpRules{rule(accept, everyone)}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, egress: "Admin out spec.egress[0]", ingress: "Admin in spec.ingress[0]"},
		}},
		{name: "egress Accept overrides the source's egress NetworkPolicy", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("out", admin, 1, nsSubject("team=red"), nil, cnpRules{rule(accept, cnpPeers{cnpNets("203.0.113.0/24")})}),
		}, nps: []*networkingv1.NetworkPolicy{np("y", "deny-egress", sel(""), egressOnly, nil, nil)}, conns: []tierConn{
			{from: "y/a", to: "203.0.113.9", proto: plan.UDP, port: 53, want: true, egress: "Admin out spec.egress[0]"},
			{from: "y/a", to: "198.51.100.1", proto: plan.UDP, port: 53, want: false, egress: "NetworkPolicy"},
		}},
		{name: "an address that is no pod has no egress policy; ingress still applies", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("in", admin, 1, nsSubject(""), cnpRules{rule(deny, everyone)}, nil),
		}, conns: []tierConn{
			{from: "203.0.113.9", to: "x/a", proto: plan.TCP, port: 80, want: true, egress: "Default", ingress: "Default"},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, egress: "Default", ingress: "Admin in spec.ingress[0]"},
		}},
		{name: "a pod reaching its own address is never subject to policy", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("all", admin, 1, nsSubject(""), cnpRules{rule(deny, everyone)}, cnpRules{rule(deny, cnpPeers{cnpNets("0.0.0.0/0")})}),
		}, conns: []tierConn{
			{from: "x/a", to: "x/a", proto: plan.TCP, port: 80, want: true, egress: "Self", ingress: "Self"},
			{from: "x/a", to: "x/b", proto: plan.TCP, port: 80, want: false},
		}},
	})
}

func TestTiersSubjectsAndPeers(t *testing.T) {
	runTiers(t, []tiersCase{
		{name: "a pods subject needs both selectors", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, podsSubject("team=blue", "app=a"), cnpRules{rule(deny, everyone)}, nil),
		}, conns: []tierConn{
			{from: "x/b", to: "x/a", proto: plan.TCP, port: 80, want: false},
			{from: "x/a", to: "x/b", proto: plan.TCP, port: 80, want: true},
			{from: "x/b", to: "y/a", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "a pods peer needs both selectors; selector peers cover both families", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject(""), cnpRules{rule(deny, cnpPeers{cnpPods("team=red", "app=a")})}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false},
			{from: "6:y/a", to: "6:x/b", proto: plan.TCP, port: 80, want: false},
			{from: "y/b", to: "x/a", proto: plan.TCP, port: 80, want: true},
			{from: "x/a", to: "x/b", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "a namespace without a Namespace object has its name label", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("kubernetes.io/metadata.name=z"), nil, cnpRules{rule(deny, everyone)}),
		}, conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, egress: "Admin p spec.egress[0]"},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "selector peers match pods, not other addresses", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject(""), nil, cnpRules{rule(deny, everyone)}),
		}, conns: []tierConn{
			{from: "x/a", to: "203.0.113.9", proto: plan.TCP, port: 80, want: true},
			{from: "x/a", to: "192.168.0.2", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "networks match any address of their family, pods' included", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), nil, cnpRules{rule(deny, cnpPeers{cnpNets("10.2.0.0/16", "fd00:2::/64")})}),
		}, conns: []tierConn{
			{from: "x/a", to: "y/a", proto: plan.TCP, port: 80, want: false},
			{from: "6:x/a", to: "6:y/a", proto: plan.TCP, port: 80, want: false},
			{from: "x/a", to: "y/b", proto: plan.TCP, port: 80, want: true},
			{from: "6:x/a", to: "6:y/b", proto: plan.TCP, port: 80, want: true},
			{from: "x/a", to: "10.2.255.255", proto: plan.TCP, port: 80, want: false},
			{from: "x/a", to: "10.3.0.1", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "an IPv6 network never matches IPv4, nor the reverse", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), nil, cnpRules{rule(deny, cnpPeers{cnpNets("::/0")})}),
			cnp("q", admin, 2, nsSubject("team=red"), nil, cnpRules{rule(deny, cnpPeers{cnpNets("0.0.0.0/0")})}),
		}, conns: []tierConn{
			{from: "x/a", to: "8.8.8.8", proto: plan.UDP, port: 53, want: true},
			{from: "6:x/a", to: "2001:db8::1", proto: plan.UDP, port: 53, want: false},
			{from: "y/a", to: "8.8.8.8", proto: plan.UDP, port: 53, want: false},
			{from: "6:y/a", to: "2001:db8::1", proto: plan.UDP, port: 53, want: true},
		}},
		{name: "nodes peers match the addresses of the selected Node objects", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), nil, cnpRules{rule(deny, cnpPeers{cnpNodes("zone=b")})}),
		}, conns: []tierConn{
			{from: "x/a", to: "192.168.0.2", proto: plan.TCP, port: 10250, want: false},
			{from: "6:x/a", to: "fd00:ff::2", proto: plan.TCP, port: 10250, want: false},
			{from: "x/a", to: "x/hn", proto: plan.TCP, port: 80, want: false},
			{from: "x/a", to: "192.168.0.1", proto: plan.TCP, port: 10250, want: true},
			{from: "x/a", to: "y/a", proto: plan.TCP, port: 80, want: true}, // a pod on node-2, not node-2
		}},
		{name: "an empty nodes selector selects every node, the pod's own node included", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), nil, cnpRules{rule(deny, cnpPeers{cnpNodes("")})}),
		}, conns: []tierConn{
			{from: "x/a", to: "192.168.0.1", proto: plan.TCP, port: 10250, want: false, egress: "Admin p spec.egress[0]"},
			{from: "x/a", to: "192.168.0.2", proto: plan.TCP, port: 10250, want: false},
		}},
		{name: "the NetworkPolicy tier keeps its own-node exception", nps: []*networkingv1.NetworkPolicy{
			np("x", "deny-egress", sel(""), egressOnly, nil, nil),
		}, conns: []tierConn{
			{from: "x/a", to: "192.168.0.1", proto: plan.TCP, port: 10250, want: true, egress: "NetworkPolicy"},
			{from: "x/a", to: "192.168.0.2", proto: plan.TCP, port: 10250, want: false, egress: "NetworkPolicy"},
		}},
		{name: "host-network pods are never subjects", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject(""), cnpRules{rule(deny, everyone)}, cnpRules{rule(deny, cnpPeers{cnpNets("0.0.0.0/0")})}),
		}, conns: []tierConn{
			{from: "x/hn", to: "203.0.113.9", proto: plan.TCP, port: 80, want: true, egress: "Default"},
			{from: "x/b", to: "x/hn", proto: plan.TCP, port: 80, want: false, egress: "Admin p spec.egress[0]", ingress: "Default"},
		}},
		{name: "host-network pods are never namespaces or pods peers", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), cnpRules{rule(deny, cnpPeers{cnpNS(""), cnpPods("", "app=a")})}, nil),
		}, conns: []tierConn{
			{from: "x/hn", to: "x/a", proto: plan.TCP, port: 80, want: true},
			{from: "x/b", to: "x/a", proto: plan.TCP, port: 80, want: false},
		}},
	})
	t.Run("finished pods", func(t *testing.T) {
		s := tiersFixture()
		s.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject(""), cnpRules{rule(deny, everyone)}, cnpRules{rule(deny, cnpPeers{cnpNets("0.0.0.0/0")})}),
		}
		done := findPod(t, s, "x/b")
		done.Phase = corev1.PodSucceeded
		a := endpoint(t, s, "x/a")
		b := Endpoint{Pod: done, IP: done.IPs[0]}
		if v := Decide(s, b, a, plan.TCP, 80); !v.Allowed || v.Egress.By != ByDefault {
			t.Errorf("finished pod as source: %+v, want allowed, egress by Default", v)
		}
		if v := Decide(s, a, b, plan.TCP, 80); v.Allowed || v.Ingress.By != ByDefault || v.Egress.By != ByAdmin {
			t.Errorf("finished pod as destination: got %s / %s, want the source's egress Deny, no ingress policy", short(v.Egress), short(v.Ingress))
		}
	})
}

func TestTiersProtocols(t *testing.T) {
	in := func(protocols ...cluster.CNPProtocol) []*cluster.ClusterNetworkPolicy {
		return []*cluster.ClusterNetworkPolicy{cnp("p", admin, 1, nsSubject("team=blue"), cnpRules{rule(deny, everyone, protocols...)}, nil)}
	}
	runTiers(t, []tiersCase{
		{name: "a number matches that port of that protocol", cnps: in(tcpPort(80), udpPort(53), sctpPort(9003)), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false},
			{from: "y/a", to: "x/a", proto: plan.UDP, port: 80, want: true},
			{from: "y/a", to: "x/a", proto: plan.UDP, port: 53, want: false},
			{from: "y/a", to: "x/a", proto: plan.SCTP, port: 9003, want: false},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 9003, want: true},
			{from: "y/a", to: "x/a", proto: plan.SCTP, port: 53, want: true},
		}},
		{name: "a range is inclusive at both ends", cnps: in(tcpRange(1000, 2000)), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 999, want: true},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 1000, want: false},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 2000, want: false},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 2001, want: true},
			{from: "y/a", to: "x/a", proto: plan.UDP, port: 1500, want: true},
		}},
		{name: "without protocols every protocol matches, ICMP included", cnps: in(), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: 1, port: 0, want: false},
			{from: "6:y/a", to: "6:x/a", proto: 58, port: 0, want: false},
			{from: "y/a", to: "x/a", proto: plan.UDP, port: 65535, want: false},
		}},
		{name: "a protocol without destinationPort means every port of it", cnps: in(cluster.CNPProtocol{UDP: &cluster.CNPPorts{}}), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.UDP, port: 1, want: false},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 1, want: true},
		}},
		{name: "an ingress named port is the subject pod's own container port, with its protocol", cnps: in(namedPort("http")), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false},
			{from: "y/a", to: "x/a", proto: plan.UDP, port: 80, want: true},
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 8080, want: true},
			{from: "y/a", to: "x/b", proto: plan.TCP, port: 8080, want: false},
			{from: "y/a", to: "x/b", proto: plan.TCP, port: 80, want: true},
			{from: "y/a", to: "x/c", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "an egress named port is the destination pod's", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", admin, 1, nsSubject("team=blue"), nil, cnpRules{rule(deny, everyone, namedPort("dns"))}),
		}, conns: []tierConn{
			{from: "x/c", to: "y/a", proto: plan.UDP, port: 53, want: false},
			{from: "x/c", to: "y/a", proto: plan.TCP, port: 53, want: true},
			{from: "x/c", to: "y/b", proto: plan.UDP, port: 53, want: true},
			{from: "x/c", to: "z/a", proto: plan.UDP, port: 53, want: false},
		}},
	})
}

func TestTiersFailClosed(t *testing.T) {
	withRule := func(r cluster.CNPRule) []*cluster.ClusterNetworkPolicy {
		return []*cluster.ClusterNetworkPolicy{
			cnp("broken", admin, 1, nsSubject("team=blue"), cnpRules{r}, nil),
			cnp("later", admin, 2, nsSubject("team=blue"), cnpRules{rule(pass, everyone)}, nil),
		}
	}
	emptyPeer := cnpPeers{{}}
	deniedByBroken := "Admin broken spec.ingress[0]"
	passedOn := "Default +pass(later spec.ingress[0])"
	runTiers(t, []tiersCase{
		{name: "an Accept rule with an empty peer matches nothing", cnps: withRule(rule(accept, append(cnpPeers{cnpNS("team=red")}, emptyPeer...))), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: passedOn},
		}},
		{name: "a Deny rule with an empty peer denies everything", cnps: withRule(rule(deny, append(cnpPeers{cnpNS("team=red")}, emptyPeer...), tcpPort(80))), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.UDP, port: 53, want: false, ingress: deniedByBroken},
			{from: "203.0.113.9", to: "x/a", proto: 1, port: 0, want: false, ingress: deniedByBroken},
		}},
		{name: "a Pass rule with an empty peer denies everything", cnps: withRule(rule(pass, emptyPeer)), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: deniedByBroken},
		}},
		{name: "a rule without peers fails closed", cnps: withRule(rule(deny, nil)), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: deniedByBroken},
		}},
		{name: "a peer with two kinds fails closed", cnps: withRule(rule(deny, cnpPeers{{Namespaces: sel("team=red"), Pods: &cluster.CNPPods{}}})), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: deniedByBroken},
		}},
		{name: "an unknown action denies everything", cnps: withRule(rule("Allow", cnpPeers{cnpNS("team=red")})), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: deniedByBroken},
		}},
		{name: "an invalid selector fails closed", cnps: withRule(rule(deny, cnpPeers{{Namespaces: expr("team", "Near", "red")}})), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 80, want: false, ingress: deniedByBroken},
		}},
		{name: "nodes and networks are no ingress peers", cnps: withRule(rule(accept, cnpPeers{cnpNets("0.0.0.0/0")})), conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: passedOn},
		}},
		{name: "a protocol entry naming two protocols fails closed", cnps: withRule(rule(deny, cnpPeers{cnpNS("team=red")},
			cluster.CNPProtocol{TCP: &cluster.CNPPorts{}, UDP: &cluster.CNPPorts{}})), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.SCTP, port: 1, want: false, ingress: deniedByBroken},
		}},
		{name: "a range with start not below end fails closed", cnps: withRule(rule(deny, cnpPeers{cnpNS("team=red")}, tcpRange(80, 80))), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 81, want: false, ingress: deniedByBroken},
		}},
		{name: "a destinationPort with neither number nor range fails closed", cnps: withRule(rule(deny, cnpPeers{cnpNS("team=red")},
			cluster.CNPProtocol{TCP: &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{}}})), conns: []tierConn{
			{from: "z/a", to: "x/a", proto: plan.TCP, port: 81, want: false, ingress: deniedByBroken},
		}},
		{name: "a subject that cannot be read selects nobody", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("two", admin, 1, cluster.CNPSubject{Namespaces: sel(""), Pods: &cluster.CNPPods{}}, cnpRules{rule(deny, everyone)}, nil),
			cnp("none", admin, 1, cluster.CNPSubject{}, cnpRules{rule(deny, everyone)}, nil),
			cnp("bad", admin, 1, cluster.CNPSubject{Namespaces: expr("a", "Near")}, cnpRules{rule(deny, everyone)}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Default"},
		}},
		{name: "a policy of an unknown tier is ignored", cnps: []*cluster.ClusterNetworkPolicy{
			cnp("p", "Developer", 1, nsSubject(""), cnpRules{rule(deny, everyone)}, nil),
		}, conns: []tierConn{
			{from: "y/a", to: "x/a", proto: plan.TCP, port: 80, want: true, ingress: "Default"},
		}},
	})
	egress := func(r cluster.CNPRule) []*cluster.ClusterNetworkPolicy {
		return []*cluster.ClusterNetworkPolicy{cnp("broken", admin, 1, nsSubject("team=blue"), nil, cnpRules{r})}
	}
	deniedOut := "Admin broken spec.egress[0]"
	runTiers(t, []tiersCase{
		{name: "domainNames: an Accept rule with them matches nothing", cnps: append(egress(rule(accept, cnpPeers{{DomainNames: []string{"example.com"}}})),
			cnp("deny", admin, 5, nsSubject("team=blue"), nil, cnpRules{rule(deny, cnpPeers{cnpNets("0.0.0.0/0")})})), conns: []tierConn{
			{from: "x/a", to: "93.184.216.34", proto: plan.TCP, port: 443, want: false, egress: "Admin deny spec.egress[0]"},
		}},
		{name: "domainNames: any other rule with them denies everything", cnps: egress(rule(deny, cnpPeers{{DomainNames: []string{"example.com"}}})), conns: []tierConn{
			{from: "x/a", to: "y/a", proto: plan.TCP, port: 80, want: false, egress: deniedOut},
		}},
		{name: "an unreadable network fails closed", cnps: egress(rule(deny, cnpPeers{cnpNets("10.0.0.0/8", "10.0.0.0/33")})), conns: []tierConn{
			{from: "x/a", to: "203.0.113.9", proto: plan.TCP, port: 80, want: false, egress: deniedOut},
		}},
		{name: "an IPv4-mapped network fails closed", cnps: egress(rule(deny, cnpPeers{cnpNets("::ffff:10.0.0.0/104")})), conns: []tierConn{
			{from: "x/a", to: "203.0.113.9", proto: plan.TCP, port: 80, want: false, egress: deniedOut},
		}},
		{name: "an empty networks list fails closed", cnps: egress(rule(pass, cnpPeers{{Networks: []string{}}})), conns: []tierConn{
			{from: "x/a", to: "203.0.113.9", proto: plan.TCP, port: 80, want: false, egress: deniedOut},
		}},
		{name: "a network with host bits is read as its network", cnps: egress(rule(deny, cnpPeers{cnpNets("10.2.0.1/16")})), conns: []tierConn{
			{from: "x/a", to: "y/a", proto: plan.TCP, port: 80, want: false, egress: deniedOut},
			{from: "x/a", to: "x/b", proto: plan.TCP, port: 80, want: true},
		}},
		{name: "a named port with a networks peer fails closed", cnps: egress(rule(deny, cnpPeers{cnpNets("10.2.0.0/16")}, namedPort("http"))), conns: []tierConn{
			{from: "x/a", to: "203.0.113.9", proto: plan.UDP, port: 1, want: false, egress: deniedOut},
		}},
	})
}

func TestTiersRuleRefString(t *testing.T) {
	r := CNPRuleRef{Policy: "p", Tier: admin, Priority: 3, Field: "spec.egress[1]", Name: "dns", Action: deny, FailClosed: "spec.egress[1].to[0]: empty peer"}
	want := `Admin ClusterNetworkPolicy p (priority 3) spec.egress[1] "dns": Deny (fail closed: spec.egress[1].to[0]: empty peer)`
	if got := r.String(); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestDecideWithoutClusterPoliciesIsAllowed: with no ClusterNetworkPolicy,
// the tiers reduce to the NetworkPolicy reference evaluator, over the random
// clusters of the cross-check.
func TestDecideWithoutClusterPoliciesIsAllowed(t *testing.T) {
	checked := 0
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 0x7135))
		s := randomSnapshot(rnd)
		eps := endpoints(s)
		for _, from := range eps {
			for _, to := range eps {
				if from.IP.Is4() != to.IP.Is4() {
					continue
				}
				for _, pp := range probePorts {
					checked++
					want := Allowed(s, from, to, pp.proto, pp.port)
					if got := Decide(s, from, to, pp.proto, pp.port); got.Allowed != want {
						t.Fatalf("seed %d: %s -> %s %v/%d: Decide says %v (egress %s, ingress %s), Allowed says %v",
							seed, describe(from), describe(to), pp.proto, pp.port, got.Allowed, short(got.Egress), short(got.Ingress), want)
					}
				}
			}
		}
	}
	t.Logf("%d connections checked", checked)
}

// TestDecideSurvivesNils: nil entries are skipped, as everywhere else.
func TestDecideSurvivesNils(t *testing.T) {
	s := tiersFixture()
	s.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{nil, cnp("p", admin, 1, nsSubject(""), cnpRules{rule(deny, everyone)}, nil)}
	s.Nodes = append(s.Nodes, nil)
	a, b := endpoint(t, s, "x/a"), endpoint(t, s, "x/b")
	if Decide(s, a, b, plan.TCP, 80).Allowed {
		t.Error("the deny-all policy after a nil entry was not applied")
	}
	if !Decide(s, a, Endpoint{IP: netip.MustParseAddr("203.0.113.1")}, plan.TCP, 80).Allowed {
		t.Error("egress to an outside address was denied")
	}
}
