package enforce

import (
	"errors"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

var small = synth.Config{Pods: 200, Policies: 40, Nodes: 3, Namespaces: 5, PodsOnNode: 30, Seed: 1}

func newPipeline(t *testing.T) (*Pipeline, *nfttest.Conn) {
	t.Helper()
	conn := nfttest.New()
	p := New(synth.NodeName(0), policy.Options{DefaultDenyUnknown: true}, conn)
	p.Load(synth.Generate(small))
	return p, conn
}

// requireKernel fails unless the fake kernel holds exactly want.
func requireKernel(t *testing.T, conn *nfttest.Conn, want *nft.Table) {
	t.Helper()
	if d := nft.Diff(want, conn.Table()); !d.Empty() {
		t.Fatalf("kernel differs from the desired table: %v", d.Differences)
	}
}

func TestSyncCommitsThePlanAndReadsBack(t *testing.T) {
	p, conn := newPipeline(t)
	s, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if !s.First || !s.Update.Full || s.Result.Messages == 0 || s.Check == nil || len(s.Check.Differences) != 0 {
		t.Fatalf("first sync: first=%v full=%v messages=%d check=%+v", s.First, s.Update.Full, s.Result.Messages, s.Check)
	}
	if len(s.Plan.Pods) == 0 || p.Plan() != s.Plan || p.Desired() != s.Table {
		t.Fatalf("plan of %d pods; Plan and Desired must be the last sync's", len(s.Plan.Pods))
	}
	requireKernel(t, conn, s.Table)

	// Nothing changed: no transaction, no read back.
	s, err = p.Sync()
	if err != nil || s.First || s.Result.Messages != 0 || s.Check != nil {
		t.Fatalf("idle sync: err=%v first=%v messages=%d check=%v", err, s.First, s.Result.Messages, s.Check)
	}

	// One pod deleted: an update, not a full compile, and only elements.
	pod := s.Plan.Pods[0]
	p.DeletePod(pod.Key())
	s, err = p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s.Update.Full || s.Result.Messages == 0 || len(s.Result.Delta.AddChains)+len(s.Result.Delta.AddSets) != 0 {
		t.Fatalf("pod deleted: full=%v delta=%+v", s.Update.Full, s.Result.Delta)
	}
	requireKernel(t, conn, s.Table)
}

// TestRepairDecisions: what the pipeline does when the kernel's table
// differs from the desired one or the kernel fails, table-driven.
func TestRepairDecisions(t *testing.T) {
	dropSet := func(tb *nft.Table) *nft.Table {
		for _, name := range tb.SetNames() {
			delete(tb.Sets, name)
			break
		}
		return tb
	}
	for _, tc := range []struct {
		name      string
		break_    func(*nfttest.Conn)
		stage     Stage // the stage that fails, "" for none
		differs   bool  // the check finds differences
		repaired  bool  // and repairs them
		converged bool  // the kernel holds the desired table afterwards
	}{
		{name: "untouched", converged: true},
		{name: "another process deleted a set", break_: func(c *nfttest.Conn) { c.Tamper(dropSet) },
			differs: true, repaired: true, converged: true},
		{name: "another process deleted the table", break_: func(c *nfttest.Conn) { c.Tamper(func(*nft.Table) *nft.Table { return nil }) },
			differs: true, repaired: true, converged: true},
		{name: "read fails", break_: func(c *nfttest.Conn) { c.FailReads(1) }, stage: StageReadBack, converged: true},
		{name: "repair fails", break_: func(c *nfttest.Conn) { c.Tamper(dropSet); c.FailApplies(1) },
			stage: StageRepair, differs: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, conn := newPipeline(t)
			if _, err := p.Sync(); err != nil {
				t.Fatal(err)
			}
			if tc.break_ != nil {
				tc.break_(conn)
			}
			chk, err := p.Verify()
			if got := StageOf(err); got != tc.stage {
				t.Fatalf("Verify: error %v, stage %q, want stage %q", err, got, tc.stage)
			}
			if err != nil && !errors.Is(err, nfttest.ErrInjected) {
				t.Fatalf("Verify: %v does not wrap the injected failure", err)
			}
			if chk != nil && (len(chk.Differences) > 0) != tc.differs {
				t.Errorf("differences %v, want some: %v", chk.Differences, tc.differs)
			}
			if chk != nil && (chk.Repair != nil) != tc.repaired {
				t.Errorf("repaired %v, want %v", chk.Repair != nil, tc.repaired)
			}
			if d := nft.Diff(p.Desired(), conn.Table()); d.Empty() != tc.converged {
				t.Errorf("kernel equal to desired: %v, want %v (%v)", d.Empty(), tc.converged, d.Differences)
			}
		})
	}
}

// TestFailedApplyIsRepairedNextTime: after a failed transaction the
// pipeline no longer trusts what it committed; the next Sync compares with
// the kernel and sends what is missing.
func TestFailedApplyIsRepairedNextTime(t *testing.T) {
	p, conn := newPipeline(t)
	conn.FailApplies(1)
	s, err := p.Sync()
	if StageOf(err) != StageApply || s.Result.Messages == 0 || p.Desired() != nil || conn.Table() != nil {
		t.Fatalf("failed first sync: err=%v messages=%d desired=%v", err, s.Result.Messages, p.Desired() != nil)
	}
	s, err = p.Sync()
	if err != nil || !s.First {
		t.Fatalf("retry: err=%v first=%v", err, s.First)
	}
	requireKernel(t, conn, s.Table)
}

func TestPendingLeavesTheKernelAlone(t *testing.T) {
	p, conn := newPipeline(t)
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	before := conn.Transactions()
	pod := p.Plan().Pods[0]
	p.DeletePod(pod.Key())
	if d := p.Pending(); d.Empty() {
		t.Fatal("deleting a local pod changes nothing pending")
	}
	if conn.Transactions() != before {
		t.Fatal("Pending committed a transaction")
	}
	s, err := p.Sync()
	if err != nil || s.Result.Messages == 0 {
		t.Fatalf("the sync after Pending must commit the pending change: err=%v messages=%d", err, s.Result.Messages)
	}
	requireKernel(t, conn, s.Table)
}
