package cluster

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

const cnpYAML = `
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Baseline
  priority: 7
  subject:
    pods: {namespaceSelector: {matchLabels: {team: blue}}, podSelector: {matchLabels: {app: a}}}
  ingress:
  - name: from-red
    action: Accept
    from: [{namespaces: {matchLabels: {team: red}}}, {}]
    protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 1, end: 9}}}}, {sctp: {}}]
  egress:
  - action: Deny
    to: [{nodes: {}}, {networks: [10.0.0.0/8, "fd00::/8"]}, {domainNames: [example.com]}]
    protocols: [{destinationNamedPort: dns}, {tcp: {destinationPort: {}}}]
`

func TestClusterNetworkPolicyFromAPI(t *testing.T) {
	in := &v1beta1.ClusterNetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte(cnpYAML), in); err != nil {
		t.Fatal(err)
	}
	want := &ClusterNetworkPolicy{
		Name: "guard", Tier: TierBaseline, Priority: 7,
		Subject: CNPSubject{Pods: &CNPPods{
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": "blue"}},
			PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
		}},
		Ingress: []CNPRule{{Name: "from-red", Action: ActionAccept,
			Peers: []CNPPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "red"}}}, {}},
			Protocols: []CNPProtocol{
				{TCP: &CNPPorts{DestinationPort: &CNPPort{Number: 80}}},
				{UDP: &CNPPorts{DestinationPort: &CNPPort{Range: &CNPPortRange{Start: 1, End: 9}}}},
				{SCTP: &CNPPorts{}}, // every port
			}}},
		Egress: []CNPRule{{Action: ActionDeny,
			Peers: []CNPPeer{{Nodes: &metav1.LabelSelector{}}, {Networks: []string{"10.0.0.0/8", "fd00::/8"}}, {DomainNames: []string{"example.com"}}},
			Protocols: []CNPProtocol{
				{DestinationNamedPort: "dns"},
				{TCP: &CNPPorts{DestinationPort: &CNPPort{}}}, // present but empty: unreadable, kept so
			}}},
	}
	got := ClusterNetworkPolicyFromAPI(in)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("converted:\n%#v\nwant:\n%#v", got, want)
	}
	c := got.DeepCopy()
	if !reflect.DeepEqual(c, got) {
		t.Fatalf("copy differs:\n%#v\n%#v", c, got)
	}
	c.Subject.Pods.PodSelector.MatchLabels["app"] = "changed"
	c.Ingress[0].Peers[0].Namespaces.MatchLabels["team"] = "changed"
	c.Egress[0].Peers[1].Networks[0] = "changed"
	c.Ingress[0].Protocols[1].UDP.DestinationPort.Range.End = 1
	if !reflect.DeepEqual(got, want) {
		t.Error("changing the copy changed the original")
	}
}

// TestClusterNetworkPolicyAuditMode: only the annotation's value "audit"
// puts a policy in audit mode.
func TestClusterNetworkPolicyAuditMode(t *testing.T) {
	for _, tc := range []struct {
		annotations map[string]string
		want        bool
	}{
		{nil, false},
		{map[string]string{ModeAnnotation: ModeAudit}, true},
		{map[string]string{ModeAnnotation: "enforce"}, false},
		{map[string]string{"other": ModeAudit}, false},
	} {
		in := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: tc.annotations}}
		if got := ClusterNetworkPolicyFromAPI(in).Audit; got != tc.want {
			t.Errorf("annotations %v: audit %v, want %v", tc.annotations, got, tc.want)
		}
	}
}
