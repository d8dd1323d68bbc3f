package lab_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/lab"
)

// TestClusterNetworkPolicyEnforced: with real packets, on one node and two,
// an admin Deny overrides a NetworkPolicy that allows, a baseline Deny
// applies where no NetworkPolicy isolates and yields where one does, and an
// update that deletes the policies (a transaction of the one pipeline)
// opens everything again.
func TestClusterNetworkPolicyEnforced(t *testing.T) {
	const policies = `
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec: {podSelector: {}, ingress: [{}]}
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {ns: "x"}}}
  ingress:
  - {name: no-y, action: Deny, from: [{namespaces: {matchLabels: {ns: "y"}}}], protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 81, end: 90}}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default-deny}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}}]}
`
	for _, nodes := range []int{1, 2} {
		t.Run(fmt.Sprintf("%dnodes", nodes), func(t *testing.T) {
			snap := snapshot(t, model("xy", "ab", nodes, "80/TCP", "81/UDP", "82/SCTP")+policies)
			l := start(t, snap, lab.Options{Enforcer: &lab.KernelEnforcer{}, ProbeTimeout: 500 * time.Millisecond})
			ns := func(key string) string { return strings.SplitN(key, "/", 2)[0] }
			expect(t, probe(t, l), func(r lab.Result) bool {
				switch {
				case ns(r.To) == "x" && ns(r.From) == "y" && r.Protocol != "SCTP":
					return false // admin Deny, whatever allow-all says
				case ns(r.To) == "y" && strings.HasSuffix(r.From, "/a"):
					return false // baseline Deny: no NetworkPolicy isolates y
				}
				return true
			})
			change := l.Snapshot()
			change.ClusterNetworkPolicies = nil
			if err := l.Update(context.Background(), change); err != nil {
				t.Fatal(err)
			}
			expect(t, probe(t, l), func(lab.Result) bool { return true })
		})
	}
}
