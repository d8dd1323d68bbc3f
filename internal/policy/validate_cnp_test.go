package policy

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

func validCNP() *v1beta1.ClusterNetworkPolicy {
	port := func(n int32) *v1beta1.Port { return &v1beta1.Port{Number: n} }
	return &v1beta1.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier:     v1beta1.AdminTier,
			Priority: 1000,
			Subject:  v1beta1.ClusterNetworkPolicySubject{Namespaces: sel("team=blue")},
			Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{
				Name:   "from-red",
				Action: v1beta1.ClusterNetworkPolicyRuleActionAccept,
				From: []v1beta1.ClusterNetworkPolicyIngressPeer{
					{Namespaces: sel("team=red")},
					{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *sel(""), PodSelector: *expr("app", metav1.LabelSelectorOpIn, "a")}},
				},
				Protocols: []v1beta1.ClusterNetworkPolicyProtocol{
					{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port(80)}},
					{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: 1000, End: 2000}}}},
					{SCTP: &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port(9003)}},
					{DestinationNamedPort: "web"},
				},
			}},
			Egress: []v1beta1.ClusterNetworkPolicyEgressRule{
				{Action: v1beta1.ClusterNetworkPolicyRuleActionPass, To: []v1beta1.ClusterNetworkPolicyEgressPeer{
					{Pods: &v1beta1.NamespacedPod{PodSelector: *sel("app=b")}}, {Namespaces: sel("")},
				}, Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "dns"}}},
				{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, To: []v1beta1.ClusterNetworkPolicyEgressPeer{
					{Nodes: sel("kubernetes.io/os=linux")}, {Networks: []v1beta1.CIDR{"10.0.0.0/8", "fd00::/8", "0.0.0.0/0"}},
				}},
			},
		},
	}
}

func TestValidateClusterNetworkPolicy(t *testing.T) {
	if errs := ValidateClusterNetworkPolicy(validCNP()); len(errs) > 0 {
		t.Fatalf("a valid policy is refused: %v", errs)
	}
	type cnp = v1beta1.ClusterNetworkPolicy
	long := string(make([]byte, 101))
	cases := []struct {
		name   string
		change func(*cnp)
		fields []string
	}{
		{"bad name", func(p *cnp) { p.Name = "Guard_1" }, []string{"metadata.name"}},
		{"a namespace on a cluster-scoped object", func(p *cnp) { p.Namespace = "x" }, []string{"metadata.namespace"}},
		{"missing tier", func(p *cnp) { p.Spec.Tier = "" }, []string{"spec.tier"}},
		{"unknown tier", func(p *cnp) { p.Spec.Tier = "admin" }, []string{"spec.tier"}},
		{"priority out of range", func(p *cnp) { p.Spec.Priority = 1001 }, []string{"spec.priority"}},
		{"negative priority", func(p *cnp) { p.Spec.Priority = -1 }, []string{"spec.priority"}},
		{"empty subject", func(p *cnp) { p.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{} }, []string{"spec.subject"}},
		{"two subjects", func(p *cnp) { p.Spec.Subject.Pods = &v1beta1.NamespacedPod{} }, []string{"spec.subject"}},
		{"bad subject selector", func(p *cnp) {
			p.Spec.Subject = v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{PodSelector: *expr("app", "Near", "a")}}
		}, []string{"spec.subject.pods.podSelector.matchExpressions[0].operator"}},
		{"too many rules", func(p *cnp) {
			for range 25 {
				p.Spec.Egress = append(p.Spec.Egress, p.Spec.Egress[1])
			}
		}, []string{"spec.egress"}},
		{"long rule name", func(p *cnp) { p.Spec.Ingress[0].Name = long }, []string{"spec.ingress[0].name"}},
		{"missing action", func(p *cnp) { p.Spec.Ingress[0].Action = "" }, []string{"spec.ingress[0].action"}},
		{"v1alpha1's Allow", func(p *cnp) { p.Spec.Egress[1].Action = "Allow" }, []string{"spec.egress[1].action"}},
		{"no peers", func(p *cnp) {
			p.Spec.Ingress[0].From = nil
			p.Spec.Egress[0].To = nil
		}, []string{"spec.ingress[0].from", "spec.egress[0].to"}},
		{"empty peers (unknown fields dropped)", func(p *cnp) {
			p.Spec.Ingress[0].From[1] = v1beta1.ClusterNetworkPolicyIngressPeer{}
			p.Spec.Egress[1].To[0] = v1beta1.ClusterNetworkPolicyEgressPeer{}
		}, []string{"spec.ingress[0].from[1]", "spec.egress[1].to[0]"}},
		{"two kinds in one peer", func(p *cnp) {
			p.Spec.Ingress[0].From[0].Pods = &v1beta1.NamespacedPod{}
			p.Spec.Egress[1].To[1].Nodes = sel("")
		}, []string{"spec.ingress[0].from[0]", "spec.egress[1].to[1]"}},
		{"bad peer selectors", func(p *cnp) {
			p.Spec.Ingress[0].From[0].Namespaces = sel("team=no spaces")
			p.Spec.Egress[1].To[0].Nodes = expr("os", metav1.LabelSelectorOpExists, "linux")
		}, []string{"spec.ingress[0].from[0].namespaces.matchLabels", "spec.egress[1].to[0].nodes.matchExpressions[0].values"}},
		{"bad networks", func(p *cnp) {
			p.Spec.Egress[1].To[1].Networks = []v1beta1.CIDR{"10.0.0.1/8", "10.0.0.0/33", "::ffff:10.0.0.0/104", "fd00::/8", "fd00::/8", "010.0.0.0/8"}
		}, []string{"spec.egress[1].to[1].networks[0]", "spec.egress[1].to[1].networks[1]", "spec.egress[1].to[1].networks[2]",
			"spec.egress[1].to[1].networks[4]", "spec.egress[1].to[1].networks[5]"}},
		{"empty networks", func(p *cnp) { p.Spec.Egress[1].To[1].Networks = []v1beta1.CIDR{} }, []string{"spec.egress[1].to[1].networks"}},
		{"domainNames are refused, per rule", func(p *cnp) {
			p.Spec.Egress[1].To = append(p.Spec.Egress[1].To, v1beta1.ClusterNetworkPolicyEgressPeer{DomainNames: []v1beta1.DomainName{"example.com"}})
		}, []string{"spec.egress[1].to[2].domainNames"}},
		{"empty protocols", func(p *cnp) { p.Spec.Egress[1].Protocols = []v1beta1.ClusterNetworkPolicyProtocol{} }, []string{"spec.egress[1].protocols"}},
		{"two protocols in one entry", func(p *cnp) {
			p.Spec.Ingress[0].Protocols[0].DestinationNamedPort = "web"
		}, []string{"spec.ingress[0].protocols[0]"}},
		{"empty protocol entry", func(p *cnp) {
			p.Spec.Ingress[0].Protocols[2] = v1beta1.ClusterNetworkPolicyProtocol{}
		}, []string{"spec.ingress[0].protocols[2]"}},
		{"a protocol without destinationPort", func(p *cnp) {
			p.Spec.Ingress[0].Protocols[0].TCP.DestinationPort = nil
		}, []string{"spec.ingress[0].protocols[0].tcp.destinationPort"}},
		{"destinationPort rules", func(p *cnp) {
			p.Spec.Ingress[0].Protocols[0].TCP.DestinationPort = &v1beta1.Port{}
			p.Spec.Ingress[0].Protocols[1].UDP.DestinationPort = &v1beta1.Port{Number: 5, Range: &v1beta1.PortRange{Start: 1, End: 2}}
			p.Spec.Ingress[0].Protocols[2].SCTP.DestinationPort = &v1beta1.Port{Number: 65536}
		}, []string{"spec.ingress[0].protocols[0].tcp.destinationPort", "spec.ingress[0].protocols[1].udp.destinationPort",
			"spec.ingress[0].protocols[2].sctp.destinationPort.number"}},
		{"range rules", func(p *cnp) {
			p.Spec.Ingress[0].Protocols[1].UDP.DestinationPort.Range = &v1beta1.PortRange{Start: 2000, End: 2000}
			p.Spec.Ingress[0].Protocols[0].TCP.DestinationPort = &v1beta1.Port{Range: &v1beta1.PortRange{Start: 0, End: 70000}}
		}, []string{"spec.ingress[0].protocols[0].tcp.destinationPort.range.start", "spec.ingress[0].protocols[0].tcp.destinationPort.range.end",
			"spec.ingress[0].protocols[1].udp.destinationPort.range"}},
		{"bad named port", func(p *cnp) { p.Spec.Ingress[0].Protocols[3].DestinationNamedPort = "Web" }, []string{"spec.ingress[0].protocols[3].destinationNamedPort"}},
		{"named port with networks or nodes peers", func(p *cnp) {
			p.Spec.Egress[1].Protocols = []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "dns"}}
		}, []string{"spec.egress[1].protocols[0].destinationNamedPort"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := validCNP()
			c.change(p)
			var got []string
			for _, e := range ValidateClusterNetworkPolicy(p) {
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
