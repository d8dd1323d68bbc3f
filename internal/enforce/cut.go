package enforce

import (
	"fmt"
	"sync"

	"github.com/kube-fence/kube-fence/internal/conntrack"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// ExistingConnections says what a committed table does to connections
// that were open before it: ExistingCut (the default) deletes the conntrack
// entries of those the new plan denies, ExistingKeep leaves them to run
// until they end. docs/policy-semantics.md has the semantics and timing.
type ExistingConnections string

const (
	ExistingCut  ExistingConnections = "cut"
	ExistingKeep ExistingConnections = "keep"
)

// ParseExistingConnections reads the value of --existing-connections.
func ParseExistingConnections(s string) (ExistingConnections, error) {
	switch m := ExistingConnections(s); m {
	case ExistingCut, ExistingKeep:
		return m, nil
	}
	return "", fmt.Errorf("--existing-connections: %q is not cut or keep", s)
}

// Cutter deletes the conntrack entries whose flows a verdict refuses,
// judging each again under guard right before its deletion:
// *conntrack.Conn, or a fake in unit tests.
type Cutter interface {
	Cut(allowed conntrack.Allowed, guard sync.Locker) (conntrack.Result, error)
	Close() error
}

var _ Cutter = (*conntrack.Conn)(nil)

// StageCut is the deletion of the conntrack entries of denied connections
// after a commit. The table is committed; the cut worker retries a failed
// cut with a growing backoff, and the next commit that may narrow asks for
// one anyway.
const StageCut Stage = "cut connections"

// CutConnections makes the pipeline cut, after every transaction that
// commits a change (its own, or a repair of someone else's), the connections
// the new plan denies, on a goroutine of its own (see cutWorker). The
// pipeline owns c and closes it. Without it, connections open before a
// change are kept. Call it before the first Apply.
func (p *Pipeline) CutConnections(c Cutter) { p.cut = newCutWorker(c) }

// OnCut sets f to be called, on the cut worker's goroutine, with what each
// cut did and its error (of StageCut), which the worker retries. Without
// CutConnections it is never called.
func (p *Pipeline) OnCut(f func(*conntrack.Result, error)) {
	if p.cut == nil {
		return
	}
	p.cut.mu.Lock()
	p.cut.onCut = f
	p.cut.mu.Unlock()
}

// WaitCut waits until the cuts asked for so far are done, or the last one
// failed and waits for its retry, and returns what the last one did: nil
// when none ran (nothing committed, or connections are kept). Sync never
// waits for a cut; tests and the lab, whose next step probes the
// connections, do.
func (p *Pipeline) WaitCut() (*conntrack.Result, error) {
	if p.cut == nil {
		return nil, nil
	}
	return p.cut.wait()
}

// OpenCutter opens the conntrack socket of the namespace whose forward hook
// the table is in: netnsFD, or the caller's own namespace when netnsFD is 0
// (as kernel.Options.NetNSFD).
func OpenCutter(netnsFD int) (Cutter, error) {
	if netnsFD == 0 {
		netnsFD = -1
	}
	return conntrack.Dial(netnsFD)
}

// commit sends a's table, and publishes its plan to the cut worker in the
// same critical section: see cutWorker.
func (p *Pipeline) commit(a *Applied) (*nft.Result, error) {
	if p.cut == nil {
		return p.write(a.Table, p.conn.Sync)
	}
	p.cut.commit.Lock()
	defer p.cut.commit.Unlock()
	res, err := p.write(a.Table, p.conn.Sync)
	if err == nil {
		p.cut.plan.Store(a.Plan)
	}
	return res, err
}

// askCut hands the cut to the worker when a commit since the last one asked
// for it.
func (p *Pipeline) askCut() {
	if p.cut == nil || !p.cutDue || p.plan == nil {
		return
	}
	p.cutDue = false
	p.cut.request()
}

// Allowed is pl's verdict on a connection, as the table judges its first
// packet in the forward hook: the egress of its source and the ingress of
// its destination, each where it is a pod of the node. Flows of neither
// (the node's own, or forwarded for others) are allowed by the plan and
// therefore kept.
func Allowed(pl *plan.Plan) conntrack.Allowed {
	return func(f conntrack.Flow) bool {
		src, dst := f.Src.Addr(), f.Dst.Addr()
		return pl.AllowsEgress(src, dst, f.Protocol, f.Dst.Port()) &&
			pl.AllowsIngress(src, dst, f.Protocol, f.Dst.Port())
	}
}
