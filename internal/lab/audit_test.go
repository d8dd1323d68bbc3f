package lab_test

import (
	"context"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// TestAuditMode: a policy in audit mode isolating x/a enforces nothing, and
// the kernel logs every probe into x/a as one it would deny; removing the
// annotation enforces it in the next transaction, and the same probes are
// dropped by x/a's ingress.
func TestAuditMode(t *testing.T) {
	snap := snapshot(t, model("xy", "ab", 1, "80/TCP", "81/UDP"))
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny-a",
			Annotations: map[string]string{policy.ModeAnnotation: policy.ModeAudit}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	snap.Policies = append(snap.Policies, deny)
	ke := &lab.KernelEnforcer{}
	l := start(t, snap, lab.Options{Enforcer: ke, ProbeTimeout: 500 * time.Millisecond})
	node := l.Nodes()[0].Name()

	for _, r := range probe(t, l) {
		if !r.Connected || r.DroppedBy != "" {
			t.Errorf("audit mode: %s -> %s %s/%d %s: connected=%v dropped_by=%q; a policy in audit mode must not block",
				r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected, r.DroppedBy)
		}
		if want := r.To == "x/a"; r.AuditDenied != want {
			t.Errorf("audit mode: %s -> %s %s/%d %s: audit_denied=%v, want %v", r.From, r.To, r.Protocol, r.Port, r.IP, r.AuditDenied, want)
		}
	}
	if text := nft.Text(ke.Desired(node)); !strings.Contains(text, `log prefix "kube-fence would-deny ingress"`) {
		t.Errorf("the table lacks the audit chains:\n%s", text)
	}

	enforce := l.Snapshot()
	for _, np := range enforce.Policies {
		if np.Name == "deny-a" {
			np.Annotations = nil
		}
	}
	if err := l.Update(context.Background(), enforce); err != nil {
		t.Fatal(err)
	}
	for _, r := range probe(t, l) {
		want := r.To != "x/a"
		if r.Connected != want || r.AuditDenied {
			t.Errorf("enforced: %s -> %s %s/%d %s: connected=%v audit_denied=%v, want connected=%v", r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected, r.AuditDenied, want)
		}
		if !want && r.DroppedBy != "ingress" {
			t.Errorf("enforced: %s -> %s %s/%d %s: dropped_by=%q, want ingress", r.From, r.To, r.Protocol, r.Port, r.IP, r.DroppedBy)
		}
	}
	if text := nft.Text(ke.Desired(node)); strings.Contains(text, "audit") {
		t.Errorf("audit chains remain without policies in audit mode:\n%s", text)
	}
}

// TestAuditModeClusterNetworkPolicy: an admin Deny ClusterNetworkPolicy in
// audit mode (annotated in the manifest) enforces nothing, and the kernel
// logs every probe into x/a as one it would deny; removing the annotation
// enforces it in the next transaction, and the same probes are dropped by
// x/a's ingress.
func TestAuditModeClusterNetworkPolicy(t *testing.T) {
	const guard = `
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata:
  name: guard
  annotations: {kube-fence.io/mode: audit}
spec:
  tier: Admin
  priority: 10
  subject: {pods: {namespaceSelector: {matchLabels: {ns: "x"}}, podSelector: {matchLabels: {pod: a}}}}
  ingress:
  - {name: deny-all, action: Deny, from: [{namespaces: {}}]}
`
	snap := snapshot(t, model("xy", "ab", 1, "80/TCP", "81/UDP")+guard)
	if len(snap.ClusterNetworkPolicies) != 1 || !snap.ClusterNetworkPolicies[0].Audit {
		t.Fatal("the manifest's ClusterNetworkPolicy is not in audit mode")
	}
	ke := &lab.KernelEnforcer{}
	l := start(t, snap, lab.Options{Enforcer: ke, ProbeTimeout: 500 * time.Millisecond})
	node := l.Nodes()[0].Name()

	audited := 0
	for _, r := range probe(t, l) {
		if !r.Connected || r.DroppedBy != "" {
			t.Errorf("audit mode: %s -> %s %s/%d %s: connected=%v dropped_by=%q; a policy in audit mode must not block",
				r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected, r.DroppedBy)
		}
		if want := r.To == "x/a"; r.AuditDenied != want {
			t.Errorf("audit mode: %s -> %s %s/%d %s: audit_denied=%v, want %v", r.From, r.To, r.Protocol, r.Port, r.IP, r.AuditDenied, want)
		}
		if r.AuditDenied {
			audited++
		}
	}
	if audited == 0 {
		t.Error("no probe marked audit_denied")
	}
	if text := nft.Text(ke.Desired(node)); !strings.Contains(text, `log prefix "kube-fence would-deny ingress"`) {
		t.Errorf("the table lacks the audit chains:\n%s", text)
	}

	enforce := l.Snapshot()
	for i, p := range enforce.ClusterNetworkPolicies {
		c := *p
		c.Audit = false
		enforce.ClusterNetworkPolicies[i] = &c
	}
	if err := l.Update(context.Background(), enforce); err != nil {
		t.Fatal(err)
	}
	for _, r := range probe(t, l) {
		want := r.To != "x/a"
		if r.Connected != want || r.AuditDenied {
			t.Errorf("enforced: %s -> %s %s/%d %s: connected=%v audit_denied=%v, want connected=%v", r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected, r.AuditDenied, want)
		}
		if !want && r.DroppedBy != "ingress" {
			t.Errorf("enforced: %s -> %s %s/%d %s: dropped_by=%q, want ingress", r.From, r.To, r.Protocol, r.Port, r.IP, r.DroppedBy)
		}
	}
	if text := nft.Text(ke.Desired(node)); strings.Contains(text, "audit") {
		t.Errorf("audit chains remain without policies in audit mode:\n%s", text)
	}
}
