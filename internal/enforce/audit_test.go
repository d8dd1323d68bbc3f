package enforce

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// TestAuditModeToggles: putting a policy in audit mode leaves the enforced
// plan as if it were deleted and adds audit chains; removing the annotation
// gives back the original table in one transaction, with the enforcing
// compiler updating rather than compiling in full; every table equals what
// a fresh pipeline renders for the same objects.
func TestAuditModeToggles(t *testing.T) {
	p, conn := newPipeline(t)
	s0, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	snap := synth.Generate(small)
	// A policy that isolates a pod of the node: audit mode changes its table.
	var target *networkingv1.NetworkPolicy
	for _, np := range snap.Policies {
		if target == nil && len(s0.Plan.Profiles) > 0 && np.Namespace+"/"+np.Name == s0.Plan.Profiles[0].Policies[0] {
			target = np
		}
	}
	if target == nil {
		t.Fatal("no policy isolates a pod of the node")
	}
	audited := target.DeepCopy()
	audited.Annotations = map[string]string{policy.ModeAnnotation: policy.ModeAudit}

	p.SetPolicy(audited)
	s1, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s1.Audit == nil || p.AuditPlan() != s1.Audit {
		t.Fatal("a policy in audit mode: no audit plan")
	}
	for _, pol := range s1.Plan.Profiles {
		for _, name := range pol.Policies {
			if name == target.Namespace+"/"+target.Name {
				t.Errorf("the enforced plan still has %s (profile %s)", name, pol.ID)
			}
		}
	}
	requireKernel(t, conn, s1.Table)
	if s1.Table.Chains["audit"] == nil {
		t.Error("no audit chain in the table")
	}
	withAudit := clone(snap, audited)
	if _, want := Preview(withAudit, synth.NodeName(0), policy.Options{DefaultDenyUnknown: true}, nft.DropLog{}); !nft.Diff(want, s1.Table).Empty() {
		t.Errorf("the incremental table differs from a fresh one: %v", nft.Diff(want, s1.Table).Differences)
	}

	p.SetPolicy(target)
	s2, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s2.Audit != nil || s2.Update.Full || s2.Result.Messages == 0 || s2.Result.Rebuilt {
		t.Fatalf("annotation removed: audit plan %v, full compile %v, messages %d, rebuilt %v; want one incremental transaction and no audit plan",
			s2.Audit != nil, s2.Update.Full, s2.Result.Messages, s2.Result.Rebuilt)
	}
	if d := nft.Diff(s0.Table, s2.Table); !d.Empty() {
		t.Errorf("after enforcing again the table differs from the original: %v", d.Differences)
	}
	requireKernel(t, conn, s2.Table)
}

// clone returns s with np in place of the policy of the same name.
func clone(s *cluster.Snapshot, np *networkingv1.NetworkPolicy) *cluster.Snapshot {
	out := *s
	out.Policies = nil
	for _, p := range s.Policies {
		if p.Namespace == np.Namespace && p.Name == np.Name {
			p = np
		}
		out.Policies = append(out.Policies, p)
	}
	return &out
}
