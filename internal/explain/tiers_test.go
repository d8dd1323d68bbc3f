package explain

import (
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
