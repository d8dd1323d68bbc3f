package enforce

import (
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// TestAuditModeTogglesClusterNetworkPolicy: a ClusterNetworkPolicy in audit
// mode leaves the enforced plan as if it did not exist and is enforced only
// in the audit plan; switching the annotation on and off is one incremental
// transaction each way; every table equals a fresh pipeline's for the same
// objects.
func TestAuditModeTogglesClusterNetworkPolicy(t *testing.T) {
	all := &metav1.LabelSelector{}
	deny := []cluster.CNPRule{{Name: "deny-all", Action: cluster.ActionDeny, Peers: []cluster.CNPPeer{{Namespaces: all}}}}
	for _, tc := range []struct {
		name string
		cnp  cluster.ClusterNetworkPolicy
	}{
		{"admin deny ingress", cluster.ClusterNetworkPolicy{Name: "audit-admin", Tier: cluster.TierAdmin, Priority: 3,
			Subject: cluster.CNPSubject{Namespaces: all}, Ingress: deny}},
		{"admin deny egress", cluster.ClusterNetworkPolicy{Name: "audit-admin-egress", Tier: cluster.TierAdmin, Priority: 7,
			Subject: cluster.CNPSubject{Namespaces: all}, Egress: deny}},
		{"baseline deny ingress", cluster.ClusterNetworkPolicy{Name: "audit-baseline", Tier: cluster.TierBaseline, Priority: 1,
			Subject: cluster.CNPSubject{Namespaces: all}, Ingress: deny}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enforced := tc.cnp
			audited := tc.cnp
			audited.Audit = true
			testCNPAuditToggle(t, &enforced, &audited)
		})
	}
}

func testCNPAuditToggle(t *testing.T, enforced, audited *cluster.ClusterNetworkPolicy) {
	snap := synth.Generate(small)
	opts := policy.Options{DefaultDenyUnknown: true}
	node := synth.NodeName(0)
	p, conn := newPipeline(t)
	s0, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	withEnforced, withAudited := *snap, *snap
	withEnforced.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{enforced}
	withAudited.ClusterNetworkPolicies = []*cluster.ClusterNetworkPolicy{audited}
	enforcedPlan, enforcedTable := Preview(&withEnforced, node, opts, nft.DropLog{})
	src, dst, egress := deniedConnection(t, snap, s0.Plan, enforcedPlan)

	p.SetClusterNetworkPolicy(audited)
	s1, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s1.Audit == nil || s1.Table.Chains["audit"] == nil {
		t.Fatalf("a ClusterNetworkPolicy in audit mode: audit plan %v, audit chain %v", s1.Audit != nil, s1.Table.Chains["audit"] != nil)
	}
	if s1.Update.Full || s1.Result.Messages == 0 || s1.Result.Rebuilt {
		t.Errorf("annotated: full compile %v, messages %d, rebuilt %v; want one incremental transaction",
			s1.Update.Full, s1.Result.Messages, s1.Result.Rebuilt)
	}
	if !allows(s1.Plan, src, dst, egress) {
		t.Errorf("%v -> %v: denied with the policy in audit mode", src, dst)
	}
	if allows(s1.Audit, src, dst, egress) {
		t.Errorf("%v -> %v: the audit plan allows what the enforced policy denies", src, dst)
	}
	_, fresh := Preview(&withAudited, node, opts, nft.DropLog{})
	if d := nft.Diff(fresh, s1.Table); !d.Empty() {
		t.Errorf("the incremental table in audit mode differs from a fresh one: %v", d.Differences)
	}
	requireKernel(t, conn, s1.Table)

	p.SetClusterNetworkPolicy(enforced)
	s2, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s2.Audit != nil || s2.Update.Full || s2.Result.Messages == 0 || s2.Result.Rebuilt {
		t.Fatalf("annotation removed: audit plan %v, full compile %v, messages %d, rebuilt %v; want one incremental transaction and no audit plan",
			s2.Audit != nil, s2.Update.Full, s2.Result.Messages, s2.Result.Rebuilt)
	}
	if allows(s2.Plan, src, dst, egress) {
		t.Errorf("%v -> %v: allowed with the policy enforced", src, dst)
	}
	if d := nft.Diff(enforcedTable, s2.Table); !d.Empty() {
		t.Errorf("enforced: the incremental table differs from a fresh one: %v", d.Differences)
	}
	requireKernel(t, conn, s2.Table)

	p.SetClusterNetworkPolicy(audited)
	s3, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s3.Update.Full || s3.Result.Messages == 0 || s3.Result.Rebuilt {
		t.Errorf("annotated again: full compile %v, messages %d, rebuilt %v; want one incremental transaction",
			s3.Update.Full, s3.Result.Messages, s3.Result.Rebuilt)
	}
	if d := nft.Diff(fresh, s3.Table); !d.Empty() {
		t.Errorf("annotated again: the table differs from a fresh one: %v", d.Differences)
	}
	requireKernel(t, conn, s3.Table)

	p.DeleteClusterNetworkPolicy(audited.Name)
	s4, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s4.Audit != nil {
		t.Error("the policy in audit mode deleted: the audit plan remains")
	}
	if d := nft.Diff(s0.Table, s4.Table); !d.Empty() {
		t.Errorf("after deleting the audit policy the table differs from the original: %v", d.Differences)
	}
	requireKernel(t, conn, s4.Table)
}

// deniedConnection finds a TCP/80 connection that touches a pod of the node
// (its egress when egress is set, else its ingress) which before allows and
// after denies.
func deniedConnection(t *testing.T, snap *cluster.Snapshot, before, after *plan.Plan) (src, dst netip.Addr, egress bool) {
	t.Helper()
	for _, lp := range before.Pods {
		for _, peer := range snap.Pods {
			if len(peer.IPs) == 0 || len(lp.IPs) == 0 || peer.Key() == lp.Namespace+"/"+lp.Name {
				continue
			}
			for _, eg := range []bool{false, true} {
				s, d := peer.IPs[0], lp.IPs[0]
				if eg {
					s, d = d, s
				}
				if s.Is4() == d.Is4() && allows(before, s, d, eg) && !allows(after, s, d, eg) {
					return s, d, eg
				}
			}
		}
	}
	t.Fatal("no connection the enforced ClusterNetworkPolicy denies that is allowed without it")
	return
}

func allows(pl *plan.Plan, src, dst netip.Addr, egress bool) bool {
	if egress {
		return pl.AllowsEgress(src, dst, plan.TCP, 80)
	}
	return pl.AllowsIngress(src, dst, plan.TCP, 80)
}
