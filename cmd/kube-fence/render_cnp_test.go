package main

import (
	"strings"
	"testing"
)

// TestRenderShowsClusterNetworkPolicy: a ClusterNetworkPolicy is rendered in
// both address modes, its tiers summarized per pod in nft comments and its
// rules in the pod's profile chain; an invalid one is refused naming the
// object and the field.
func TestRenderShowsClusterNetworkPolicy(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
status: {podIPs: [{ip: 10.42.0.10}]}
spec: {nodeName: n0}
---
apiVersion: v1
kind: Node
metadata: {name: n0}
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}
`
	for _, mode := range []string{"lab", "objects"} {
		out, stderr, code := run(t, in, "render", "-f", "-", "--addresses", mode)
		if code != 0 {
			t.Fatalf("--addresses %s: exit %d, stderr %q", mode, code, stderr)
		}
		for _, want := range []string{
			"# x/a ingress (chain ingress-i",
			"#   admin    guard (priority 1) spec.ingress[0]: Deny",
			"#   default: allow",
			`goto drop-ingress comment "admin guard spec.ingress[0] Deny"`,
			"table inet kube-fence",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("--addresses %s: output lacks %q:\n%s", mode, want, out)
			}
		}
	}
	bad := strings.Replace(in, "priority: 1", "priority: 1001", 1)
	if _, stderr, code := run(t, bad, "render", "-f", "-"); code != 2 || !strings.Contains(stderr, "clusternetworkpolicy guard (document 3 (line 11)): spec.priority") {
		t.Errorf("invalid policy: exit %d, stderr %q; want exit 2 naming the object and the field", code, stderr)
	}
}
