package policy

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestFailClosed: what cannot be compiled is reported with its field path
// and left out in the direction that allows less; the policy keeps isolating
// the pods it selects.
func TestFailClosed(t *testing.T) {
	withIngress := func(rules ...in) *networkingv1.NetworkPolicy {
		return np("x", "p", sel("app=a"), nil, rules, nil)
	}
	bad := func(p networkingv1.NetworkPolicyPort, mutate func(*networkingv1.NetworkPolicyPort)) networkingv1.NetworkPolicyPort {
		mutate(&p)
		return p
	}
	cases := []struct {
		name     string
		policy   *networkingv1.NetworkPolicy
		probes   []probe
		problems []string // field paths
	}{
		{name: "a rule whose only peer is invalid allows nothing",
			policy:   withIngress(in{From: peers{blockPeer("not-a-cidr")}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, false}, {"203.0.113.1", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].ipBlock.cidr"}},
		{name: "a rule whose only port is invalid allows nothing",
			policy:   withIngress(in{Ports: ports{num(tcp, 0)}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, false}, {"x/b", "x/a", tcp, 0, false}},
			problems: []string{"spec.ingress[0].ports[0].port"}},
		{name: "an unreadable except drops its whole peer, other peers stay",
			policy:   withIngress(in{From: peers{blockPeer("10.0.0.0/8", "bad"), podPeer(sel("app=b"))}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, true}, {"y/a", "x/a", tcp, 80, false}, {"10.9.9.9", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}},
		{name: "an except wider than the cidr is subtracted anyway",
			policy:   withIngress(in{From: peers{blockPeer("10.2.0.0/24", "10.0.0.0/8")}}),
			probes:   []probe{{"y/a", "x/a", tcp, 80, false}, {"10.2.0.99", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}},
		{name: "an except outside the cidr changes nothing",
			policy:   withIngress(in{From: peers{blockPeer("10.2.0.0/24", "10.1.0.0/24", "fd00::/8")}}),
			probes:   []probe{{"y/a", "x/a", tcp, 80, true}, {"x/b", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].ipBlock.except[0]", "spec.ingress[0].from[0].ipBlock.except[1]"}},
		{name: "a cidr with host bits is read as its network",
			policy: withIngress(in{From: peers{blockPeer("10.2.0.77/24")}}),
			probes: []probe{{"y/a", "x/a", tcp, 80, true}, {"x/b", "x/a", tcp, 80, false}}},
		{name: "an IPv4-mapped IPv6 cidr is refused",
			policy:   withIngress(in{From: peers{blockPeer("::ffff:10.0.0.0/104")}}),
			probes:   []probe{{"y/a", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].ipBlock.cidr"}},
		{name: "an invalid podSelector skips the whole policy: nobody knows whom it selects",
			policy: np("x", "p", expr("app", "Bogus", "a"), nil, nil, nil),
			probes: []probe{{"y/a", "x/a", tcp, 80, true}},
			// Reported by every node with a pod in the namespace.
			problems: []string{"spec.podSelector"}},
		{name: "an invalid selector in a peer drops that peer",
			policy:   withIngress(in{From: peers{podPeer(expr("app", metav1.LabelSelectorOpIn)), podPeer(sel("app=b"))}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, true}, {"x/c", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].podSelector"}},
		{name: "an invalid namespaceSelector drops that peer",
			policy:   withIngress(in{From: peers{nsPeer(expr("team", metav1.LabelSelectorOpExists, "x"))}}),
			probes:   []probe{{"y/a", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0].namespaceSelector"}},
		{name: "an unknown protocol drops the port entry",
			policy:   withIngress(in{Ports: ports{num("ICMP", 80), num(udp, 53)}}),
			probes:   []probe{{"x/b", "x/a", udp, 53, true}, {"x/b", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].ports[0].protocol"}},
		{name: "an explicit empty protocol is not TCP",
			policy: withIngress(in{Ports: ports{bad(num(tcp, 80), func(p *networkingv1.NetworkPolicyPort) {
				p.Protocol = ptrTo(corev1.Protocol(""))
			})}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].ports[0].protocol"}},
		{name: "endPort with a named port, without a port, below the port, above 65535",
			policy: withIngress(in{Ports: ports{
				bad(named("", "http"), func(p *networkingv1.NetworkPolicyPort) { p.EndPort = ptrTo[int32](90) }),
				bad(allOf(tcp), func(p *networkingv1.NetworkPolicyPort) { p.EndPort = ptrTo[int32](90) }),
				rng(tcp, 100, 99),
				rng(tcp, 100, 70000),
				num(tcp, 70000),
				named("", "Not_A_Name"),
				bad(num(tcp, 1), func(p *networkingv1.NetworkPolicyPort) { p.Port = &intstr.IntOrString{Type: 7} }),
			}}),
			probes: []probe{{"x/b", "x/a", tcp, 80, false}, {"x/b", "x/a", tcp, 100, false}, {"x/b", "x/a", tcp, 90, false}},
			problems: []string{"spec.ingress[0].ports[0].endPort", "spec.ingress[0].ports[1].endPort",
				"spec.ingress[0].ports[2].endPort", "spec.ingress[0].ports[3].endPort", "spec.ingress[0].ports[4].port",
				"spec.ingress[0].ports[5].port", "spec.ingress[0].ports[6].port"}},
		{name: "a peer with ipBlock and a selector is dropped",
			policy:   withIngress(in{From: peers{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}, PodSelector: sel("")}}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0]"}},
		{name: "an empty peer is dropped",
			policy:   withIngress(in{From: peers{{}}}),
			probes:   []probe{{"x/b", "x/a", tcp, 80, false}},
			problems: []string{"spec.ingress[0].from[0]"}},
		{name: "an unknown policyTypes value is ignored",
			policy:   np("x", "p", sel("app=a"), []networkingv1.PolicyType{"Egress", "Sideways"}, nil, nil),
			probes:   []probe{{"x/a", "y/a", tcp, 80, false}, {"y/a", "x/a", tcp, 80, true}},
			problems: []string{"spec.policyTypes[1]"}},
		{name: "policyTypes with no valid value is defaulted",
			policy: np("x", "p", sel("app=a"), []networkingv1.PolicyType{"ingress"}, nil,
				[]out{{To: peers{podPeer(sel("app=b"))}}}),
			probes:   []probe{{"x/a", "y/a", tcp, 80, false}, {"x/a", "x/b", tcp, 8080, true}, {"y/a", "x/a", tcp, 80, false}},
			problems: []string{"spec.policyTypes[0]"}},
		{name: "egress problems are reported under to",
			policy:   np("x", "p", sel("app=a"), nil, nil, []out{{To: peers{blockPeer("10.0.0.0/33")}, Ports: ports{num(sctp, -1)}}}),
			probes:   []probe{{"x/a", "10.1.2.3", sctp, 1, false}},
			problems: []string{"spec.egress[0].ports[0].port", "spec.egress[0].to[0].ipBlock.cidr"}},
	}
	for _, tc := range cases {
		runSemantics(t, []semanticsCase{{name: tc.name, policies: []*networkingv1.NetworkPolicy{tc.policy}, probes: tc.probes}})
		t.Run(tc.name+"/problems", func(t *testing.T) {
			s := fixture()
			s.Policies = []*networkingv1.NetworkPolicy{tc.policy}
			var got []string
			for _, p := range Compile(s, "node-1", Options{}).Problems {
				if p.Policy != "x/p" || p.Message == "" {
					t.Errorf("problem %v: want policy x/p and a message", p)
				}
				if !strings.HasPrefix(p.String(), "networkpolicy x/p: "+p.Field+": ") {
					t.Errorf("problem string %q does not name the policy and field", p.String())
				}
				got = append(got, p.Field)
			}
			if !slices.Equal(got, tc.problems) {
				t.Errorf("problems at %q, want %q", got, tc.problems)
			}
			// The validator refuses the same object, so the lab never runs
			// what the compiler would have to patch up.
			if len(tc.problems) > 0 && len(Validate(tc.policy)) == 0 {
				t.Errorf("Validate accepts a policy the compiler reports problems for")
			}
		})
	}
}

// TestProblemsOnlyForThisNode: a policy that selects no pod of the node is
// not even parsed there.
func TestProblemsOnlyForThisNode(t *testing.T) {
	s := fixture()
	s.Policies = []*networkingv1.NetworkPolicy{np("z", "p", sel(""), nil, []in{{From: peers{blockPeer("bad")}}}, nil)}
	if got := Compile(s, "node-1", Options{}).Problems; len(got) != 0 {
		t.Errorf("node-1 reports %v for a policy of a namespace it has no pod of", got)
	}
	if got := Compile(s, "node-2", Options{}).Problems; len(got) != 1 {
		t.Errorf("node-2 reports %v, want one problem", got)
	}
}

func ptrTo[T any](v T) *T { return &v }
