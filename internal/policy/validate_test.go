package policy

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidate(t *testing.T) {
	valid := func() *networkingv1.NetworkPolicy {
		return np("x", "web", sel("app=a"), bothTypes,
			[]in{{From: peers{bothPeer(sel("team=red"), expr("app", metav1.LabelSelectorOpIn, "b")), blockPeer("10.0.0.0/8", "10.1.0.0/16"),
				blockPeer("fd00::/8", "fd00:1::/64")},
				Ports: ports{num("", 80), rng(udp, 1000, 2000), named(sctp, "sync"), allOf(udp), rng(tcp, 5, 5)}}, {}},
			[]out{{}, {To: peers{nsPeer(sel(""))}, Ports: ports{num(tcp, 65535)}}})
	}
	if errs := Validate(valid()); len(errs) > 0 {
		t.Fatalf("a valid policy is refused: %v", errs)
	}
	cases := []struct {
		name   string
		change func(*networkingv1.NetworkPolicy)
		fields []string
	}{
		{"bad name", func(p *networkingv1.NetworkPolicy) { p.Name = "Web_1" }, []string{"metadata.name"}},
		{"missing namespace", func(p *networkingv1.NetworkPolicy) { p.Namespace = "" }, []string{"metadata.namespace"}},
		{"bad podSelector", func(p *networkingv1.NetworkPolicy) {
			p.Spec.PodSelector = *expr("app", metav1.LabelSelectorOpExists, "a")
		}, []string{"spec.podSelector.matchExpressions[0].values"}},
		{"bad operator", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[0].PodSelector = expr("app", "Near", "a")
		}, []string{"spec.ingress[0].from[0].podSelector.matchExpressions[0].operator"}},
		{"bad label value", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Egress[1].To[0].NamespaceSelector = sel("team=no spaces")
		}, []string{"spec.egress[1].to[0].namespaceSelector.matchLabels"}},
		{"empty peer", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Egress[1].To = append(p.Spec.Egress[1].To, networkingv1.NetworkPolicyPeer{})
		}, []string{"spec.egress[1].to[1]"}},
		{"ipBlock with a selector", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[1].PodSelector = sel("")
		}, []string{"spec.ingress[0].from[1]"}},
		{"missing cidr", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[1].IPBlock.CIDR = ""
		}, []string{"spec.ingress[0].from[1].ipBlock.cidr"}},
		{"bad cidr", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[1].IPBlock.CIDR = "10.0.0.0/33"
		}, []string{"spec.ingress[0].from[1].ipBlock.cidr"}},
		{"cidr with host bits (strict validation)", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[1].IPBlock.CIDR = "10.0.0.1/8"
		}, []string{"spec.ingress[0].from[1].ipBlock.cidr"}},
		{"cidr with leading zeros", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[1].IPBlock.CIDR = "010.0.0.0/8"
		}, []string{"spec.ingress[0].from[1].ipBlock.cidr"}},
		{"IPv4-mapped cidr", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[2].IPBlock = &networkingv1.IPBlock{CIDR: "::ffff:10.0.0.0/104"}
		}, []string{"spec.ingress[0].from[2].ipBlock.cidr"}},
		{"except not inside", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].From[1].IPBlock.Except = []string{"11.0.0.0/16", "10.0.0.0/8", "fd00::/16", "10.0.0.0/16", "bad"}
		}, []string{"spec.ingress[0].from[1].ipBlock.except[0]", "spec.ingress[0].from[1].ipBlock.except[1]",
			"spec.ingress[0].from[1].ipBlock.except[2]", "spec.ingress[0].from[1].ipBlock.except[4]"}},
		{"port out of range", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].Ports[0] = num(tcp, 0)
			p.Spec.Egress[1].Ports[0] = num(tcp, 65536)
		}, []string{"spec.ingress[0].ports[0].port", "spec.egress[1].ports[0].port"}},
		{"bad protocol", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].Ports[0] = num("tcp", 80)
		}, []string{"spec.ingress[0].ports[0].protocol"}},
		{"bad port name", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].Ports[2] = named("", "80")
			p.Spec.Ingress[0].Ports[3] = named("", "a-very-long-port-name")
		}, []string{"spec.ingress[0].ports[2].port", "spec.ingress[0].ports[3].port"}},
		{"endPort rules", func(p *networkingv1.NetworkPolicy) {
			p.Spec.Ingress[0].Ports[1] = rng(udp, 2000, 1000)
			p.Spec.Ingress[0].Ports[2].EndPort = ptrTo[int32](9)
			p.Spec.Ingress[0].Ports[3].EndPort = ptrTo[int32](9)
			p.Spec.Ingress[0].Ports[4] = rng(tcp, 5, 70000)
		}, []string{"spec.ingress[0].ports[1].endPort", "spec.ingress[0].ports[2].endPort",
			"spec.ingress[0].ports[3].endPort", "spec.ingress[0].ports[4].endPort"}},
		{"bad policyTypes", func(p *networkingv1.NetworkPolicy) {
			p.Spec.PolicyTypes = []networkingv1.PolicyType{"Ingress", "ingress"}
		}, []string{"spec.policyTypes[1]"}},
		{"too many policyTypes", func(p *networkingv1.NetworkPolicy) {
			p.Spec.PolicyTypes = []networkingv1.PolicyType{"Ingress", "Egress", "Ingress"}
		}, []string{"spec.policyTypes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := valid()
			c.change(p)
			var got []string
			for _, e := range Validate(p) {
				got = append(got, e.Field)
				if e.Error() == "" {
					t.Errorf("empty message for %s", e.Field)
				}
			}
			if !slices.Equal(got, c.fields) {
				t.Errorf("errors at %q, want %q", got, c.fields)
			}
		})
	}
}
