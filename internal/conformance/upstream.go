package conformance

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The upstream cases are those of kubernetes/kubernetes
// test/e2e/network/netpol/network_policy.go: 42 over TCP, 3 over UDP and 3
// over SCTP, in the file's order, with the file's names. Each states the
// policies it creates and, for the protocol and ports the upstream test
// probes, the truth table the upstream test expects, rewritten for the
// full model (all of x, y, z times a, b, c): upstream builds the tables
// with the same "default, then override groups of pairs" operations, which
// Reach reproduces.

const nsName = corev1.LabelMetadataName

var (
	all   = Labels()
	podA  = Labels(PodLabel, "a")
	podB  = Labels(PodLabel, "b")
	nsX   = Labels(nsName, "x")
	nsY   = Labels(nsName, "y")
	notX  = Expr(nsName, metav1.LabelSelectorOpNotIn, "x")
	xPods = Peer{Namespace: "x"}
	yPods = Peer{Namespace: "y"}
	zPods = Peer{Namespace: "z"}
	xa    = Peer{Namespace: "x", Pod: "a"}
	anyP  = Peer{}
)

func denyIngressToX(r *Reach) { r.ExpectPeer(anyP, xPods, false) }

// Upstream returns the 48 upstream cases.
func Upstream() []Case {
	var cases []Case
	cases = append(cases, upstreamSelectors()...)
	cases = append(cases, upstreamPorts()...)
	cases = append(cases, upstreamChanges()...)
	cases = append(cases, upstreamEgress()...)
	cases = append(cases, upstreamProtocols()...)
	return append(cases, upstreamUDPAndSCTP()...)
}

func one(name string, nps []*networkingv1.NetworkPolicy, checks ...Check) Case {
	return Case{Name: name, Group: GroupTCP, Steps: []Step{{Action: describe(nps), Change: apply(nps...), Checks: checks}}}
}

func pols(nps ...*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy { return nps }

func describe(nps []*networkingv1.NetworkPolicy) string {
	s := "create"
	for _, np := range nps {
		s += " networkpolicy " + np.Namespace + "/" + np.Name
	}
	return s
}

func upstreamSelectors() []Case {
	onlyXBToXA := func(r *Reach) { r.ExpectAllIngress("x/a", false); r.Expect("x/b", "x/a", true) }
	onlyYToXA := func(r *Reach) { r.ExpectPeer(xPods, xa, false); r.ExpectPeer(zPods, xa, false) }
	return []Case{
		one("should support a 'default-deny-ingress' policy",
			pols(Policy("x", "deny-ingress", all, Ingress())), tcp(80, denyIngressToX)),
		one("should support a 'default-deny-all' policy",
			pols(Policy("x", "deny-all", all, Ingress(), Egress())),
			tcp(80, func(r *Reach) { r.ExpectPeer(anyP, xPods, false); r.ExpectPeer(xPods, anyP, false) })),
		one("should enforce policy to allow traffic from pods within server namespace based on PodSelector",
			pols(Policy("x", "x-a-allows-x-b", podA, Ingress(From(nil, PodPeer(podB))))), tcp(80, onlyXBToXA)),
		one("should enforce policy to allow ingress traffic for a target",
			pols(Policy("x", "deny-all", all, Ingress()),
				Policy("x", "allow-all-to-a", podA, Ingress(From(nil, PodNamespacePeer(all, all))))),
			tcp(80, func(r *Reach) { r.ExpectPeer(anyP, xPods, false); r.ExpectAllIngress("x/a", true) })),
		one("should enforce policy to allow ingress traffic from pods in all namespaces",
			pols(Policy("x", "allow-from-another-ns", podA, Ingress(From(nil, NamespacePeer(all))))), tcp(80, nil)),
		one("should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
			pols(Policy("x", "allow-client-a-via-ns-selector", podA, Ingress(From(nil, NamespacePeer(nsY))))), tcp(80, onlyYToXA)),
		one("should enforce policy based on PodSelector with MatchExpressions",
			pols(Policy("x", "x-a-allows-x-b", podA, Ingress(From(nil, PodPeer(Expr(PodLabel, metav1.LabelSelectorOpIn, "b")))))),
			tcp(80, onlyXBToXA)),
		one("should enforce policy based on NamespaceSelector with MatchExpressions",
			pols(Policy("x", "allow-ns-y-match-selector", podA, Ingress(From(nil, NamespacePeer(Expr(nsName, metav1.LabelSelectorOpIn, "y")))))),
			tcp(80, onlyYToXA)),
		one("should enforce policy based on PodSelector or NamespaceSelector",
			pols(Policy("x", "allow-ns-y-match-selector", podA, Ingress(From(nil, NamespacePeer(notX), PodPeer(podB))))),
			tcp(80, func(r *Reach) { r.Expect("x/c", "x/a", false) })),
		one("should enforce policy based on PodSelector and NamespaceSelector",
			pols(Policy("x", "allow-ns-y-podselector-and-nsselector", podA, Ingress(From(nil, PodNamespacePeer(podB, notX))))),
			tcp(80, func(r *Reach) {
				r.ExpectAllIngress("x/a", false)
				r.Expect("y/b", "x/a", true)
				r.Expect("z/b", "x/a", true)
			})),
		one("should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
			pols(Policy("x", "allow-ns-y-z-pod-b-c", podA,
				Ingress(From(nil, PodNamespacePeer(Expr(PodLabel, metav1.LabelSelectorOpIn, "b", "c"), notX))))),
			tcp(80, func(r *Reach) {
				r.ExpectPeer(xPods, xa, false)
				r.Expect("y/a", "x/a", false)
				r.Expect("z/a", "x/a", false)
			})),
		one("should enforce policy based on any PodSelectors",
			pols(Policy("x", "allow-ns-x-pod-b-c", podA, Ingress(From(nil, PodPeer(podB), PodPeer(Labels(PodLabel, "c")))))),
			tcp(80, func(r *Reach) {
				r.ExpectAllIngress("x/a", false)
				r.Expect("x/b", "x/a", true)
				r.Expect("x/c", "x/a", true)
			})),
		one("should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
			pols(Policy("x", "allow-ns-y-pod-a-via-namespace-pod-selector", podA, Ingress(From(nil, PodNamespacePeer(podA, nsY))))),
			tcp(80, func(r *Reach) { r.ExpectAllIngress("x/a", false); r.Expect("y/a", "x/a", true) })),
	}
}

func onlyYToXAOn(r *Reach) {
	r.ExpectPeer(xPods, xa, false)
	r.ExpectPeer(yPods, xa, true)
	r.ExpectPeer(zPods, xa, false)
}

func upstreamPorts() []Case {
	port81FromY := Policy("x", "allow-client-a-via-ns-selector", podA,
		Ingress(From(Ports(Port(corev1.ProtocolTCP, 81)), NamespacePeer(nsY))))
	port80FromY := Policy("x", "allow-client-a-via-ns-selector-80", podA,
		Ingress(From(Ports(Port(corev1.ProtocolTCP, 80)), NamespacePeer(nsY))))
	allowAll := Policy("x", "allow-all", all, Ingress(From(nil)))
	return []Case{
		one("should enforce policy based on Ports", pols(port81FromY), tcp(81, onlyYToXAOn)),
		{Name: "should enforce multiple, stacked policies with overlapping podSelectors", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(port81FromY)), Change: apply(port81FromY), Checks: []Check{
				tcp(81, onlyYToXAOn),
				tcp(80, func(r *Reach) { r.ExpectAllIngress("x/a", false) }),
			}},
			{Action: describe(pols(port80FromY)), Change: apply(port80FromY), Checks: []Check{tcp(80, onlyYToXAOn)}},
		}},
		one("should support allow-all policy", pols(allowAll), tcp(80, nil), tcp(81, nil)),
		one("should allow ingress access on one named port",
			pols(Policy("x", "allow-all", all, Ingress(From(Ports(NamedPort("", "serve-81-tcp")))))),
			tcp(81, nil), tcp(80, denyIngressToX)),
		one("should allow ingress access from namespace on one named port",
			pols(Policy("x", "allow-client-a-via-ns-selector-80", podA,
				Ingress(From(Ports(NamedPort(corev1.ProtocolTCP, "serve-80-tcp")), NamespacePeer(nsY))))),
			tcp(80, func(r *Reach) { r.ExpectPeer(xPods, xa, false); r.ExpectPeer(zPods, xa, false) }),
			tcp(81, func(r *Reach) { r.ExpectAllIngress("x/a", false) })),
		one("should allow egress access on one named port",
			pols(Policy("x", "allow-egress", all, Egress(To(Ports(NamedPort("", "serve-80-tcp")))))),
			tcp(80, nil), tcp(81, func(r *Reach) { r.ExpectPeer(xPods, anyP, false) })),
	}
}

func upstreamChanges() []Case {
	mutate := Policy("x", "allow-all-mutate-to-deny-all", all, Ingress(From(nil)))
	denied := mutate.DeepCopy()
	denied.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
	fromUpdatedNS := Policy("x", "allow-client-a-via-ns-selector", podA, Ingress(From(nil, NamespacePeer(Labels("ns2", "updated")))))
	fromUpdatedPod := Policy("x", "allow-client-a-via-pod-selector", podA, Ingress(From(nil, PodPeer(Labels(PodLabel, "b", "pod2", "updated")))))
	isolated := Policy("x", "deny-ingress-via-label-selector", Labels("target", "isolated"), Ingress())
	onlyXA := func(r *Reach) { r.ExpectAllIngress("x/a", false) }
	return []Case{
		{Name: "should enforce updated policy", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(mutate)), Change: apply(mutate), Checks: []Check{tcp(81, nil)}},
			{Action: "update networkpolicy x/allow-all-mutate-to-deny-all to ingress: []", Change: apply(denied),
				Checks: []Check{tcp(81, denyIngressToX)}},
		}},
		{Name: "should allow ingress access from updated namespace", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(fromUpdatedNS)), Change: apply(fromUpdatedNS), Checks: []Check{tcp(80, onlyXA)}},
			{Action: "label namespace y ns2=updated",
				Change: func(s *State) error { return s.LabelNamespace("y", "ns2", "updated") },
				Checks: []Check{tcp(80, func(r *Reach) { onlyXA(r); r.ExpectPeer(yPods, anyP, true) })}},
		}},
		{Name: "should allow ingress access from updated pod", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(fromUpdatedPod)), Change: apply(fromUpdatedPod), Checks: []Check{tcp(80, onlyXA)}},
			{Action: "label pod x/b pod2=updated",
				Change: func(s *State) error { return s.LabelPod("x/b", "pod2", "updated") },
				Checks: []Check{tcp(80, func(r *Reach) { onlyXA(r); r.Expect("x/b", "x/a", true) })}},
		}},
		one("should deny ingress from pods on other namespaces",
			pols(Policy("x", "deny-empty-policy", all, Ingress(From(nil, PodPeer(all))))),
			tcp(80, func(r *Reach) { r.ExpectPeer(yPods, xPods, false); r.ExpectPeer(zPods, xPods, false) })),
		{Name: "should deny ingress access to updated pod", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(isolated)), Change: apply(isolated), Checks: []Check{tcp(80, nil)}},
			{Action: "label pod x/a target=isolated",
				Change: func(s *State) error { return s.LabelPod("x/a", "target", "isolated") },
				Checks: []Check{tcp(80, onlyXA)}},
		}},
	}
}

func upstreamEgress() []Case {
	toYA := To(nil, PodNamespacePeer(podA, nsY))
	fromXA := From(nil, PodNamespacePeer(podA, nsX))
	inAndOut := Policy("x", "allow-client-a-via-pod-selector", podA, Ingress(From(nil, PodPeer(podB))))
	inAndOut.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{To(Ports(Port("", 80)))}
	inAndOut.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress}
	return []Case{
		one("should deny egress from pods based on PodSelector",
			pols(Policy("x", "deny-egress-pod-a", podA, Egress())), tcp(80, func(r *Reach) { r.ExpectAllEgress("x/a", false) })),
		one("should deny egress from all pods in a namespace",
			pols(Policy("x", "deny-egress-ns-x", all, Egress())), tcp(80, func(r *Reach) { r.ExpectPeer(xPods, anyP, false) })),
		one("should work with Ingress, Egress specified together", pols(inAndOut),
			tcp(80, func(r *Reach) { r.ExpectAllIngress("x/a", false); r.Expect("x/b", "x/a", true) }),
			tcp(81, func(r *Reach) {
				r.ExpectAllIngress("x/a", false)
				r.ExpectAllEgress("x/a", false)
				r.Expect("x/b", "x/a", true)
			})),
		one("should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
			pols(Policy("x", "allow-to-ns-y-pod-a", podA, Egress(toYA)),
				Policy("y", "allow-from-xa-on-ya-match-selector", podA, Ingress(fromXA)),
				Policy("y", "allow-from-xa-on-yb-match-selector", podB, Ingress(fromXA))),
			tcp(80, func(r *Reach) {
				r.ExpectPeer(xa, anyP, false)
				r.ExpectPeer(anyP, Peer{Namespace: "y", Pod: "a"}, false)
				r.ExpectPeer(xa, Peer{Namespace: "y", Pod: "a"}, true)
				r.ExpectPeer(anyP, Peer{Namespace: "y", Pod: "b"}, false)
			})),
		one("should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
			pols(Policy("x", "allow-to-ns-y-pod-a", podA, Egress(toYA))),
			tcp(80, func(r *Reach) { r.ExpectAllEgress("x/a", false); r.Expect("x/a", "y/a", true) })),
	}
}

func upstreamProtocols() []Case {
	port80 := Policy("x", "allow-ingress-port-80", all, Ingress(From(Ports(Port("", 80)))))
	allowIn := Policy("x", "allow-ingress", all, Ingress(From(nil)))
	egress80 := Policy("x", "allow-egress-port-80", all, Egress(To(Ports(Port("", 80)))))
	allowOut := Policy("x", "allow-egress", all, Egress(To(nil)))
	denyAll := Policy("x", "deny-all", all, Ingress(), Egress())
	cidr := func(s *State) error {
		s.Apply(Policy("x", "allow-client-a-via-cidr-egress-rule", podA, Egress(To(nil, hostBlocks(s.IPs("y/b"))...))))
		return nil
	}
	except := func(s *State) error {
		s.Apply(Policy("x", "allow-client-a-via-cidr-egress-rule", podA, Egress(To(nil, wideBlocksExcept(s.IPs("x/b"))...))))
		return nil
	}
	exceptThenHost := func(s *State) error {
		s.Apply(Policy("x", "allow-client-a-via-cidr-egress-rule", podA, Egress(To(nil, hostBlocks(s.IPs("x/b"))...))))
		return nil
	}
	notXB := func(r *Reach) { r.Expect("x/a", "x/b", false) }
	egressOfA := Policy("x", "allow-egress-for-target", podA, Egress(To(nil)))
	ingressOfA := Policy("x", "deny-ingress-via-label-selector", podA, Ingress())
	return []Case{
		one("should enforce ingress policy allowing any port traffic to a server on a specific protocol",
			pols(Policy("x", "allow-ingress-by-proto", podA, Ingress(From(Ports(AnyPort(corev1.ProtocolTCP)))))),
			tcp(80, nil), check(corev1.ProtocolUDP, 80, func(r *Reach) { r.ExpectPeer(anyP, xa, false) })),
		{Name: "should enforce multiple ingress policies with ingress allow-all policy taking precedence", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(port80)), Change: apply(port80), Checks: []Check{tcp(81, denyIngressToX)}},
			{Action: describe(pols(allowIn)), Change: apply(allowIn), Checks: []Check{tcp(81, nil)}},
		}},
		{Name: "should enforce multiple egress policies with egress allow-all policy taking precedence", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(egress80)), Change: apply(egress80), Checks: []Check{tcp(81, func(r *Reach) { r.ExpectPeer(xPods, anyP, false) })}},
			{Action: describe(pols(allowOut)), Change: apply(allowOut), Checks: []Check{tcp(81, nil)}},
		}},
		{Name: "should stop enforcing policies after they are deleted", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(denyAll)), Change: apply(denyAll), Checks: []Check{
				tcp(80, func(r *Reach) { r.ExpectPeer(xPods, anyP, false); r.ExpectPeer(anyP, xPods, false) })}},
			{Action: "delete every networkpolicy", Change: func(s *State) error { s.DeleteAllPolicies(); return nil },
				Checks: []Check{tcp(80, nil)}},
		}},
		{Name: "should allow egress access to server in CIDR block", Group: GroupTCP, Steps: []Step{
			{Action: "create networkpolicy x/allow-client-a-via-cidr-egress-rule (to: y/b's addresses, /32 and /128)", Change: cidr,
				Checks: []Check{tcp(80, func(r *Reach) { r.ExpectAllEgress("x/a", false); r.Expect("x/a", "y/b", true) })}},
		}},
		{Name: "should enforce except clause while egress access to server in CIDR block", Group: GroupTCP, Steps: []Step{
			{Action: "create networkpolicy x/allow-client-a-via-cidr-egress-rule (to: the /4 around x/b's addresses, except them)",
				Change: except, Checks: []Check{tcp(80, notXB)}},
		}},
		{Name: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed", Group: GroupTCP, Steps: []Step{
			{Action: "create networkpolicy x/allow-client-a-via-cidr-egress-rule (to: the /4 around x/b's addresses, except them)",
				Change: except, Checks: []Check{tcp(80, notXB)}},
			{Action: "update networkpolicy x/allow-client-a-via-cidr-egress-rule (to: x/b's addresses only)", Change: exceptThenHost,
				Checks: []Check{tcp(80, func(r *Reach) { r.ExpectAllEgress("x/a", false); r.Expect("x/a", "x/b", true) })}},
		}},
		{Name: "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector", Group: GroupTCP, Steps: []Step{
			{Action: describe(pols(egressOfA)), Change: apply(egressOfA), Checks: []Check{tcp(80, nil)}},
			{Action: describe(pols(ingressOfA)), Change: apply(ingressOfA), Checks: []Check{tcp(80, func(r *Reach) { r.ExpectAllIngress("x/a", false) })}},
		}},
		one("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
			pols(Policy("x", "deny-ingress", all, Ingress()),
				Policy("x", "allow-only-sctp-ingress-on-port-81", podA, Ingress(From(Ports(Port(corev1.ProtocolSCTP, 81)))))),
			tcp(81, denyIngressToX)),
		one("should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
			pols(Policy("x", "allow-only-sctp-ingress-on-port-80", podA, Ingress(From(Ports(Port(corev1.ProtocolSCTP, 80)))))),
			tcp(81, func(r *Reach) { r.ExpectAllIngress("x/a", false) })),
		one("should not allow access by TCP when a policy specifies only UDP",
			pols(Policy("x", "allow-only-udp-ingress-on-port-81", podA, Ingress(From(Ports(Port(corev1.ProtocolUDP, 81)))))),
			tcp(81, func(r *Reach) { r.ExpectAllIngress("x/a", false) })),
		one("should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
			pols(Policy("x", "allow-client-a-via-ns-selector-for-immutable-ns-label", podA, Ingress(From(nil, NamespacePeer(nsY))))),
			tcp(80, func(r *Reach) { r.ExpectPeer(xPods, xa, false); r.ExpectPeer(zPods, xa, false) })),
		one("should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
			pols(Policy("x", "allow-ns-y-match-selector-for-immutable-ns-label", podA,
				Egress(To(nil, NamespacePeer(Expr(nsName, metav1.LabelSelectorOpNotIn, "y")))))),
			tcp(80, func(r *Reach) { r.ExpectPeer(xa, yPods, false) })),
	}
}

// upstreamUDPAndSCTP returns the three cases upstream runs over UDP and
// the same three over SCTP.
func upstreamUDPAndSCTP() []Case {
	var out []Case
	for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolSCTP} {
		group := GroupUDP
		if proto == corev1.ProtocolSCTP {
			group = GroupSCTP
		}
		cases := []Case{
			one("should support a 'default-deny-ingress' policy",
				pols(Policy("x", "deny-all", all, Ingress())), check(proto, 80, denyIngressToX)),
			one("should enforce policy based on Ports",
				pols(Policy("x", "allow-ingress-on-port-81-ns-x", podA, Ingress(From(Ports(Port(proto, 81)), NamespacePeer(nsY))))),
				check(proto, 81, func(r *Reach) { r.ExpectPeer(xPods, xa, false); r.ExpectPeer(zPods, xa, false) })),
			one("should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
				pols(Policy("x", "allow-ns-y-pod-a-via-namespace-pod-selector", podA, Ingress(From(nil, PodNamespacePeer(podA, nsY))))),
				check(proto, 80, func(r *Reach) { r.ExpectAllIngress("x/a", false); r.Expect("y/a", "x/a", true) })),
		}
		for i := range cases {
			cases[i].Group = group
		}
		out = append(out, cases...)
	}
	return out
}
