package scenario

import (
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

const cnpScenario = `
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: admin-guard}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - {name: deny-y, action: Deny, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: "y"}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 0
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}}
  egress:
  - action: Accept
    to: [{networks: [10.0.0.0/8, "fd00::/8"]}, {nodes: {}}]
    protocols: [{udp: {destinationPort: {range: {start: 53, end: 54}}}}]
`

func TestParseClusterNetworkPolicies(t *testing.T) {
	s, err := Parse([]byte(cnpScenario))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ClusterNetworkPolicies) != 2 {
		t.Fatalf("%d ClusterNetworkPolicies, want 2", len(s.ClusterNetworkPolicies))
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range snap.ClusterNetworkPolicies {
		names = append(names, string(p.Tier)+"/"+p.Name)
	}
	if got := strings.Join(names, " "); got != "Admin/admin-guard Baseline/baseline" {
		t.Errorf("snapshot holds %s", got)
	}
	if r := snap.ClusterNetworkPolicies[1].Egress[0]; r.Action != cluster.ActionAccept || len(r.Peers) != 2 ||
		r.Protocols[0].UDP.DestinationPort.Range.End != 54 {
		t.Errorf("baseline egress rule converted as %+v", r)
	}
	// Cluster-scoped: no namespace is made up for them.
	for _, ns := range snap.Namespaces {
		if ns.Name != "x" {
			t.Errorf("namespace %s added for a cluster-scoped object", ns.Name)
		}
	}
}

func TestParseClusterNetworkPolicyErrors(t *testing.T) {
	doc := func(version, meta, spec string) string {
		return "apiVersion: policy.networking.k8s.io/" + version + "\nkind: ClusterNetworkPolicy\nmetadata: " + meta + "\nspec:\n" + spec
	}
	valid := "  tier: Admin\n  priority: 1\n  subject: {namespaces: {}}\n"
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"a namespace", doc("v1beta1", "{name: p, namespace: x}", valid),
			[]string{`clusternetworkpolicy p (document 1 (line 1)): metadata.namespace: Forbidden: not allowed on this type`}},
		{"unknown field", doc("v1alpha2", "{name: p}", valid+"  ingres: []\n"),
			[]string{`document 1 (line 1): clusternetworkpolicy p: unknown field "spec.ingres"`}},
		{"v1alpha1 is AdminNetworkPolicy's", doc("v1alpha1", "{name: p}", valid),
			[]string{`apiVersion "policy.networking.k8s.io/v1alpha1" kind "ClusterNetworkPolicy" is not supported`, "policy.networking.k8s.io/v1beta1"}},
		{"bad tier and priority", doc("v1beta1", "{name: p}", "  tier: admin\n  priority: 1001\n  subject: {namespaces: {}}\n"),
			[]string{`spec.tier: Unsupported value: "admin"`, `spec.priority: Invalid value: 1001`}},
		{"empty peer", doc("v1beta1", "{name: p}", valid+"  egress: [{action: Deny, to: [{}]}]\n"),
			[]string{`clusternetworkpolicy p (document 1 (line 1)): spec.egress[0].to[0]: Required value: must specify exactly one of`}},
		{"domainNames", doc("v1beta1", "{name: p}", valid+"  egress: [{action: Accept, to: [{domainNames: [example.com]}]}]\n"),
			[]string{`spec.egress[0].to[0].domainNames: Forbidden: kube-fence does not enforce domainNames`}},
		{"range", doc("v1beta1", "{name: p}", valid+"  ingress: [{action: Pass, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 9, end: 9}}}}]}]\n"),
			[]string{`spec.ingress[0].protocols[0].tcp.destinationPort.range: Invalid value: "9-9": start must be below end`}},
		{"duplicate name", doc("v1beta1", "{name: p}", valid) + "---\n" + doc("v1alpha2", "{name: p}", valid),
			[]string{`clusternetworkpolicy p (document 2 (line 9)): metadata.name: Duplicate value: "p"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.in)
			}
			if !IsInvalid(err) {
				t.Errorf("error %v is not an InvalidError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
