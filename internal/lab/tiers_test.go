package lab_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// TestClusterNetworkPolicyRefused: the compiler does not enforce the admin
// and baseline tiers yet, so the lab refuses them where enforcement starts,
// before it changes anything: in New and in Update.
func TestClusterNetworkPolicyRefused(t *testing.T) {
	guard := &cluster.ClusterNetworkPolicy{Name: "guard", Tier: cluster.TierAdmin,
		Subject: cluster.CNPSubject{Pods: &cluster.CNPPods{}}}
	snap := snapshot(t, model("x", "ab", 1, "80/TCP"))
	withCNP := lab.Clone(snap)
	withCNP.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{guard}
	if _, err := lab.New(context.Background(), withCNP, lab.Options{}); !errors.Is(err, policy.ErrClusterNetworkPolicyNotEnforced) {
		t.Errorf("New: %v, want %v", err, policy.ErrClusterNetworkPolicyNotEnforced)
	}

	l := start(t, snap, lab.Options{})
	change := l.Snapshot()
	change.Pods = change.Pods[:1] // would stop x/b
	change.ClusterNetworkPolicies = withCNP.ClusterNetworkPolicies
	if err := l.Update(context.Background(), change); !errors.Is(err, policy.ErrClusterNetworkPolicyNotEnforced) {
		t.Errorf("Update: %v, want %v", err, policy.ErrClusterNetworkPolicyNotEnforced)
	}
	after := l.Snapshot()
	if len(after.Pods) != 2 || len(after.ClusterNetworkPolicies) != 0 {
		t.Errorf("after the refused update the lab holds %d pods and %d ClusterNetworkPolicies, want 2 and 0",
			len(after.Pods), len(after.ClusterNetworkPolicies))
	}
	if rs := probe(t, l); len(rs) == 0 {
		t.Error("no probes after the refused update")
	}
}
