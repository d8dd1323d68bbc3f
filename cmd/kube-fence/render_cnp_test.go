package main

import (
	"strings"
	"testing"
)

// TestRenderRefusesClusterNetworkPolicy: a ClusterNetworkPolicy is decoded
// and validated, then refused before anything is rendered, in both address
// modes: a table without the admin tier would not be what was asked.
func TestRenderRefusesClusterNetworkPolicy(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}
`
	for _, mode := range []string{"lab", "objects"} {
		out, stderr, code := run(t, in, "render", "-f", "-", "--addresses", mode)
		if code != 2 || out != "" || !strings.Contains(stderr, "ClusterNetworkPolicy is not enforced yet") || !strings.Contains(stderr, "guard") {
			t.Errorf("--addresses %s: exit %d, stderr %q, stdout %q; want exit 2, nothing printed, and the refusal naming guard", mode, code, stderr, out)
		}
	}
	bad := strings.Replace(in, "priority: 1", "priority: 1001", 1)
	if _, stderr, code := run(t, bad, "render", "-f", "-"); code != 2 || !strings.Contains(stderr, "clusternetworkpolicy guard (document 2 (line 5)): spec.priority") {
		t.Errorf("invalid policy: exit %d, stderr %q; want exit 2 naming the object and the field", code, stderr)
	}
}
