package enforce

import (
	"fmt"

	"github.com/kube-fence/kube-fence/internal/conntrack"
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

// Cutter deletes the conntrack entries whose flows a verdict refuses:
// *conntrack.Conn, or a fake in unit tests.
type Cutter interface {
	Cut(conntrack.Allowed) (conntrack.Result, error)
	Close() error
}

var _ Cutter = (*conntrack.Conn)(nil)

// StageCut is the deletion of the conntrack entries of denied connections
// after a commit. The table is committed; a failed cut is retried by the
// next Sync or Verify.
const StageCut Stage = "cut connections"

// CutConnections makes the pipeline cut, after every transaction that
// commits a change (its own, or a repair of someone else's), the connections
// the new plan denies. The pipeline owns c and closes it. Without it,
// connections open before a change are kept.
func (p *Pipeline) CutConnections(c Cutter) { p.cutter = c }

// OpenCutter opens the conntrack socket of the namespace whose forward hook
// the table is in: netnsFD, or the caller's own namespace when netnsFD is 0
// (as kernel.Options.NetNSFD).
func OpenCutter(netnsFD int) (Cutter, error) {
	if netnsFD == 0 {
		netnsFD = -1
	}
	return conntrack.Dial(netnsFD)
}

// cutIfDue cuts the connections the committed plan denies when a commit
// since the last successful cut asked for it. It returns nil when nothing
// was due.
func (p *Pipeline) cutIfDue() (*conntrack.Result, error) {
	if p.cutter == nil || !p.cutDue || p.plan == nil {
		return nil, nil
	}
	res, err := p.cutter.Cut(Allowed(p.plan))
	if err != nil {
		return &res, &Error{StageCut, err}
	}
	p.cutDue = false
	return &res, nil
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
