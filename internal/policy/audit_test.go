package policy

import (
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// TestDecideSkipsAuditClusterNetworkPolicies: Decide ignores an admin Deny
// in audit mode, and on WithAuditEnforced's snapshot the same policy denies;
// the original snapshot is left as it was.
func TestDecideSkipsAuditClusterNetworkPolicies(t *testing.T) {
	all := &metav1.LabelSelector{}
	a := &cluster.Pod{Namespace: "x", Name: "a", NodeName: "n", Phase: "Running", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	b := &cluster.Pod{Namespace: "y", Name: "b", NodeName: "n", Phase: "Running", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}
	audit := &cluster.ClusterNetworkPolicy{Name: "guard", Tier: cluster.TierAdmin, Audit: true,
		Subject: cluster.CNPSubject{Namespaces: all},
		Ingress: []cluster.CNPRule{{Action: cluster.ActionDeny, Peers: []cluster.CNPPeer{{Namespaces: all}}}}}
	s := &cluster.Snapshot{
		Namespaces:             []*cluster.Namespace{{Name: "x"}, {Name: "y"}},
		Pods:                   []*cluster.Pod{a, b},
		ClusterNetworkPolicies: []*cluster.ClusterNetworkPolicy{audit},
	}
	from, to := Endpoint{Pod: a, IP: a.IPs[0]}, Endpoint{Pod: b, IP: b.IPs[0]}
	if v := Decide(s, from, to, plan.TCP, 80); !v.Allowed || v.Ingress.By != ByDefault {
		t.Errorf("audit mode: allowed %v by %s, want allowed by Default", v.Allowed, v.Ingress.By)
	}
	enforced, any := WithAuditEnforced(s)
	if !any {
		t.Fatal("WithAuditEnforced found no policy in audit mode")
	}
	v := Decide(enforced, from, to, plan.TCP, 80)
	if v.Allowed || v.Ingress.By != ByAdmin || v.Ingress.Rule == nil || v.Ingress.Rule.Policy != "guard" {
		t.Errorf("audit enforced: allowed %v by %s (rule %v), want denied by the admin rule of guard", v.Allowed, v.Ingress.By, v.Ingress.Rule)
	}
	if !s.ClusterNetworkPolicies[0].Audit {
		t.Error("WithAuditEnforced changed the original policy")
	}
}
