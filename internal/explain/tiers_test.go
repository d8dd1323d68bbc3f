package explain

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// TestExplainShowsTheTier: with ClusterNetworkPolicies, each side names the
// tier that decided it and the rule, and the Pass rules before it.
func TestExplainShowsTheTier(t *testing.T) {
	s := snapshot(t)
	all := &metav1.LabelSelector{}
	team := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}
	s.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{
		{Name: "guard", Tier: cluster.TierAdmin, Priority: 5, Subject: cluster.CNPSubject{Namespaces: all},
			Ingress: []cluster.CNPRule{
				{Name: "pass-x", Action: cluster.ActionPass, Peers: []cluster.CNPPeer{{Namespaces: team}}},
				{Name: "deny-rest", Action: cluster.ActionDeny, Peers: []cluster.CNPPeer{{Namespaces: all}}},
			}},
	}
	cases := []struct {
		from, to string
		allowed  bool
		tier     string
		text     []string
	}{
		// x is passed on to NetworkPolicy, which allows x -> y/b on 80.
		{"x/a", "y/b", true, "NetworkPolicy", []string{"passed on by Admin ClusterNetworkPolicy guard (priority 5) spec.ingress[0]", "allowed by y/allow-web ingress[0]"}},
		// y itself is denied by the admin rule, whatever NetworkPolicy says.
		{"y/c", "x/a", false, "Admin", []string{"ingress of x/a: denied by Admin ClusterNetworkPolicy guard (priority 5) spec.ingress[1] \"deny-rest\": Deny"}},
	}
	for _, tc := range cases {
		r, err := Explain(s, Query{From: tc.from, To: tc.to, Protocol: plan.TCP, Port: 80})
		if err != nil {
			t.Fatal(err)
		}
		v := r.Verdicts[0]
		if v.Allowed != tc.allowed || v.Ingress.Tier != tc.tier {
			t.Errorf("%s -> %s: allowed=%v by %s, want %v by %s", tc.from, tc.to, v.Allowed, v.Ingress.Tier, tc.allowed, tc.tier)
		}
		var b strings.Builder
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		for _, want := range tc.text {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s -> %s: text lacks %q:\n%s", tc.from, tc.to, want, b.String())
			}
		}
	}
}

// TestExplainAuditClusterNetworkPolicy: an admin Deny ClusterNetworkPolicy
// in audit mode changes no verdict and no tier; the connections it would
// deny name it (by its name) in would_be_denied_by, beside an audit
// NetworkPolicy when both would.
func TestExplainAuditClusterNetworkPolicy(t *testing.T) {
	s := snapshot(t)
	all := &metav1.LabelSelector{}
	x := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "x"}}
	s.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{
		{Name: "audit-guard", Tier: cluster.TierAdmin, Priority: 5, Audit: true, Subject: cluster.CNPSubject{Namespaces: x},
			Ingress: []cluster.CNPRule{{Name: "deny-all", Action: cluster.ActionDeny, Peers: []cluster.CNPPeer{{Namespaces: all}}}}},
	}
	r, err := Explain(s, Query{From: "y/b", To: "x/a", Protocol: plan.TCP, Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Verdicts {
		if !v.Allowed || v.Ingress.Tier != "Default" || v.Ingress.Rule != "" || !slices.Equal(v.WouldBeDeniedBy, []string{"audit-guard"}) {
			t.Errorf("%s: allowed %v by %s %q, would be denied by %v; want allowed by Default, would be denied by [audit-guard]",
				v.Family, v.Allowed, v.Ingress.Tier, v.Ingress.Rule, v.WouldBeDeniedBy)
		}
	}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "TCP/80: allowed; would be denied by audit-guard (audit)") {
		t.Errorf("text lacks the audit verdict:\n%s", b.String())
	}
	// Not a subject of the policy: no audit verdict.
	if r, err = Explain(s, Query{From: "x/a", To: "y/b", Protocol: plan.TCP, Port: 80}); err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Verdicts {
		if len(v.WouldBeDeniedBy) != 0 {
			t.Errorf("%s x/a -> y/b: would be denied by %v; want none", v.Family, v.WouldBeDeniedBy)
		}
	}
	// Enforced, it denies, and is no audit verdict.
	enforced := *s.ClusterNetworkPolicies[0]
	enforced.Audit = false
	s.ClusterNetworkPolicies[0] = &enforced
	if r, err = Explain(s, Query{From: "y/b", To: "x/a", Protocol: plan.TCP, Port: 80}); err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Verdicts {
		if v.Allowed || v.Ingress.Tier != "Admin" || len(v.WouldBeDeniedBy) != 0 {
			t.Errorf("%s enforced: allowed %v by %s, would be denied by %v; want denied by Admin, no audit verdict",
				v.Family, v.Allowed, v.Ingress.Tier, v.WouldBeDeniedBy)
		}
	}
}
