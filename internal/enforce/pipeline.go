package enforce

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Conn is the pipeline's connection to one node's nftables: *kernel.Conn over
// netlink, or nfttest.Conn in memory for unit tests.
type Conn interface {
	Sync(want *nft.Table) (*nft.Result, error)
	VerifyApplied(want *nft.Table, d *nft.Delta) (*nft.Delta, error)
	Verify(want *nft.Table) (*nft.Delta, error)
	Repair(want *nft.Table) (*nft.Result, error)
	Rebuild(want *nft.Table) (*nft.Result, error)
	DeleteTable() error
	OwnershipState() string
	PortID() uint32
	Close() error
}

var _ Conn = (*kernel.Conn)(nil)

// Stage names the step of a sync that failed.
type Stage string

const (
	StageApply    Stage = "apply"
	StageReadBack Stage = "read back"
	StageRepair   Stage = "repair"
	// StageCut: see cut.go.
)

// Error is a failed step. The kernel keeps the last table it committed.
type Error struct {
	Stage Stage
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Stage, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// StageOf returns the stage of a pipeline error, or "" for another error.
func StageOf(err error) Stage {
	var e *Error
	if errors.As(err, &e) {
		return e.Stage
	}
	return ""
}

// Span is the wall and process CPU time of one step.
type Span struct{ Wall, CPU time.Duration }

// Applied is what Apply did.
type Applied struct {
	Plan *plan.Plan
	// Audit is the plan with the policies in audit mode enforced, whose
	// decisions the table logs as "would deny"; nil without them.
	Audit *plan.Plan
	Table *nft.Table // the desired table, now committed unless Apply failed
	// Update says what the compiler did (a full compile or an update).
	Update policy.UpdateStats
	// Result is the transaction; Result.Messages is 0 when nothing changed.
	// It is set, with what was sent, even when the transaction failed.
	Result *nft.Result
	// First is set on the pipeline's first transaction, which also adopts or
	// repairs whatever table an earlier agent left.
	First bool
	// Compile, Render and Transaction time the steps.
	Compile, Render, Transaction Span
}

// Check is what a read back found and did.
type Check struct {
	// Differences the kernel's table had from the desired one; empty when
	// it held exactly the desired table.
	Differences []string
	// Repair is the transaction that removed them, nil when none was needed.
	Repair *nft.Result
}

// Sync is what Sync did: the transaction and, when it changed something,
// the read back of what it changed.
type Sync struct {
	*Applied
	Check *Check // nil when the transaction changed nothing
}

// Changes receives object changes. Pipeline implements it; the agent's
// store and the lab's scenario steps hand their changes to one.
type Changes interface {
	SetNamespace(*cluster.Namespace)
	DeleteNamespace(name string)
	SetPod(*cluster.Pod)
	DeletePod(key string)
	SetPolicy(*networkingv1.NetworkPolicy)
	DeletePolicy(key string)
	SetNode(*cluster.Node)
	DeleteNode(name string)
	SetClusterNetworkPolicy(*cluster.ClusterNetworkPolicy)
	DeleteClusterNetworkPolicy(name string)
}

var _ Changes = (*Pipeline)(nil)

// Pipeline enforces one node's policy. It is not safe for concurrent use:
// one goroutine owns it, as one writer owns the kernel's table.
type Pipeline struct {
	compiler *policy.Compiler // the enforced policies: those in audit mode are left out
	audit    *audit
	renderer nft.Renderer
	conn     Conn
	desired  *nft.Table // the table of the last Apply; what a read back compares with
	plan     *plan.Plan
	// committing, when set, is told the plan whose table a transaction is
	// about to commit, and the previous plan again when it fails.
	committing func(enforced, audit *plan.Plan)
	auditPlan  *plan.Plan
	cut        *cutWorker // nil: connections open before a change are kept
	cutDue     bool       // a commit since the last cut was asked for
	// MaxPeerRanges, unless a test sets another budget.
	maxPeerRanges int
	// refused counts the transactions refused in a row (see write).
	refused int
	sized   rangeCache // the profiles' sizes, for the budget
}

func (p *Pipeline) budget() int {
	if p.maxPeerRanges > 0 {
		return p.maxPeerRanges
	}
	return MaxPeerRanges
}

// New returns a pipeline for node over conn, with no objects yet. The
// pipeline owns conn and closes it.
func New(node string, opts policy.Options, conn Conn) *Pipeline {
	return &Pipeline{compiler: policy.NewCompiler(node, opts), audit: newAudit(node, opts), conn: conn}
}

// Open opens the netlink connection nopts describes and returns a pipeline
// over it.
func Open(node string, opts policy.Options, nopts kernel.Options) (*Pipeline, error) {
	conn, err := kernel.Open(nopts)
	if err != nil {
		return nil, err
	}
	return New(node, opts, conn), nil
}

// SetDropLog sets how the table logs the packets it drops (the default
// logs them; see nft.DropLog). Call it before the first Apply.
func (p *Pipeline) SetDropLog(l nft.DropLog) { p.renderer = nft.Renderer{DropLog: l} }

// OnCommit sets f to be called with the plans whose table the next
// transaction commits (the enforced one, and the one with the policies in
// audit mode enforced, nil without them), just before it is sent, and with
// the previous plans (nil before the first) when it fails. What reads the
// kernel's log of dropped packets uses it: a packet the new table drops can
// be logged before Apply returns.
func (p *Pipeline) OnCommit(f func(enforced, audit *plan.Plan)) { p.committing = f }

// The object changes. Objects must not be modified after they are handed
// over: a change is a new object, as informers deliver them.

// Pods, namespaces and nodes are the same in both compilers; the audit
// one, while there is one, gets them too.
func (p *Pipeline) both(f func(Changes)) {
	f(p.compiler)
	if p.audit.compiler != nil {
		f(p.audit.compiler)
	}
}

func (p *Pipeline) SetPod(pod *cluster.Pod) { p.both(func(c Changes) { c.SetPod(pod) }) }
func (p *Pipeline) DeletePod(key string)    { p.both(func(c Changes) { c.DeletePod(key) }) }
func (p *Pipeline) SetNamespace(ns *cluster.Namespace) {
	p.both(func(c Changes) { c.SetNamespace(ns) })
}
func (p *Pipeline) DeleteNamespace(name string) { p.both(func(c Changes) { c.DeleteNamespace(name) }) }

// SetPolicy enforces np, or, in audit mode (policy.IsAudit), only logs what
// it would deny: switching a policy between the modes is one change.
func (p *Pipeline) SetPolicy(np *networkingv1.NetworkPolicy) {
	key := np.Namespace + "/" + np.Name
	if policy.IsAudit(np) {
		p.compiler.DeletePolicy(key)
	} else {
		p.compiler.SetPolicy(np)
	}
	p.audit.setPolicy(key, np)
}

func (p *Pipeline) DeletePolicy(key string) { p.compiler.DeletePolicy(key); p.audit.deletePolicy(key) }
func (p *Pipeline) SetNode(n *cluster.Node) { p.both(func(c Changes) { c.SetNode(n) }) }
func (p *Pipeline) DeleteNode(name string)  { p.both(func(c Changes) { c.DeleteNode(name) }) }

// SetClusterNetworkPolicy enforces c, or, in audit mode (c.Audit), only
// logs what it would deny, as SetPolicy does.
func (p *Pipeline) SetClusterNetworkPolicy(c *cluster.ClusterNetworkPolicy) {
	if c.Audit {
		p.compiler.DeleteClusterNetworkPolicy(c.Name)
	} else {
		p.compiler.SetClusterNetworkPolicy(c)
	}
	p.audit.setClusterNetworkPolicy(c)
}

func (p *Pipeline) DeleteClusterNetworkPolicy(name string) {
	p.compiler.DeleteClusterNetworkPolicy(name)
	p.audit.deleteClusterNetworkPolicy(name)
}

// Load hands over every object of s.
func (p *Pipeline) Load(s *cluster.Snapshot) { loadInto(p, s) }

func loadInto(c Changes, s *cluster.Snapshot) {
	for _, ns := range s.Namespaces {
		if ns != nil {
			c.SetNamespace(ns)
		}
	}
	for _, pod := range s.Pods {
		if pod != nil {
			c.SetPod(pod)
		}
	}
	for _, np := range s.Policies {
		if np != nil {
			c.SetPolicy(np)
		}
	}
	for _, n := range s.Nodes {
		if n != nil {
			c.SetNode(n)
		}
	}
	for _, cnp := range s.ClusterNetworkPolicies {
		if cnp != nil {
			c.SetClusterNetworkPolicy(cnp)
		}
	}
}

// Sync brings the kernel's table to the objects as handed over so far: it
// applies the changes (Apply) and, when the transaction changed something,
// reads back what it changed and repairs any difference (ReadBack); then,
// with CutConnections, it asks for a cut of the connections the committed
// plan denies, which runs after Sync returns (WaitCut waits for it). The
// rest of the table is left to Verify.
func (p *Pipeline) Sync() (*Sync, error) {
	a, err := p.Apply()
	s := &Sync{Applied: a}
	if err != nil {
		return s, err
	}
	if a.Result.Messages > 0 {
		if s.Check, err = p.ReadBack(a); err != nil {
			return s, err
		}
	}
	// After the commit, never before: a packet between a cut and the
	// commit would open the entry again under the old table.
	p.askCut()
	return s, nil
}

// Apply compiles what changed since the last Apply, renders it, and
// commits the difference from the last committed table in one transaction.
func (p *Pipeline) Apply() (*Applied, error) {
	a := &Applied{First: p.desired == nil}
	t := now()
	// Over the budget, the largest profiles allow nothing and their
	// policies have a Problem; the rest is enforced as usual.
	a.Plan = withinBudget(p.compiler.Plan(), p.budget(), &p.sized)
	a.Update = p.compiler.LastUpdate()
	a.Audit = p.audit.plan(p.compiler)
	a.Compile = t.lap()
	a.Table = p.renderer.RenderAudit(a.Plan, a.Audit)
	a.Render = t.lap()
	if p.committing != nil {
		p.committing(a.Plan, a.Audit)
	}
	res, err := p.commit(a)
	a.Transaction = t.lap()
	if err != nil && p.committing != nil {
		p.committing(p.plan, p.auditPlan)
	}
	if res == nil {
		res = &nft.Result{Delta: &nft.Delta{}}
	}
	a.Result = res
	if err != nil {
		return a, &Error{StageApply, err}
	}
	// A commit that can only allow more leaves nothing to cut.
	p.cutDue = p.cutDue || a.First || res.Messages > 0 && narrows(p.plan, a.Plan)
	p.desired, p.plan, p.auditPlan = a.Table, a.Plan, a.Audit
	return a, nil
}

// write sends a transaction by send (a sync or a repair), or, once a
// transaction was refused and so was the repair from a full read back that
// followed it, rebuilds the table in one transaction. A refused repair
// means the kernel holds something the read back cannot explain (a foreign
// set under one of our names, with a size limit or flags we never set, is
// read as ours, and filling it is refused every time): repairing again
// would be refused again, forever.
func (p *Pipeline) write(want *nft.Table, send func(*nft.Table) (*nft.Result, error)) (*nft.Result, error) {
	if p.refused >= 2 {
		send = p.conn.Rebuild
	}
	res, err := send(want)
	if err != nil {
		p.refused++
		return res, err
	}
	p.refused = 0
	return res, nil
}

// ReadBack reads back what a's transaction changed and repairs any
// difference from the desired table.
func (p *Pipeline) ReadBack(a *Applied) (*Check, error) {
	d, err := p.conn.VerifyApplied(a.Table, a.Result.Delta)
	if err != nil {
		return nil, &Error{StageReadBack, err}
	}
	return p.settle(d)
}

// Verify reads the whole table back and repairs any difference from the
// desired one. Before the first Apply there is nothing to compare with and
// it returns nil.
func (p *Pipeline) Verify() (*Check, error) {
	if p.desired == nil {
		return nil, nil
	}
	d, err := p.conn.Verify(p.desired)
	if err != nil {
		return nil, &Error{StageReadBack, err}
	}
	c, err := p.settle(d)
	if err != nil {
		return c, err
	}
	p.askCut()
	return c, nil
}

func (p *Pipeline) settle(d *nft.Delta) (*Check, error) {
	c := &Check{Differences: d.Differences}
	if d.Empty() {
		return c, nil
	}
	res, err := p.write(p.desired, p.conn.Repair)
	if err != nil {
		return c, &Error{StageRepair, fmt.Errorf("%w (differences: %s)", err, strings.Join(c.Differences[:min(5, len(c.Differences))], "; "))}
	}
	c.Repair = res
	// Whatever replaced the table may have let denied connections open.
	p.cutDue = true
	return c, nil
}

// Pending returns what the next Apply would change in the committed table,
// without changing the kernel. The bench uses it to find changes that
// matter; a later Apply commits what it found.
func (p *Pipeline) Pending() *nft.Delta {
	return nft.Diff(p.renderer.RenderAudit(withinBudget(p.compiler.Plan(), p.budget(), nil), p.audit.plan(p.compiler)), p.desired)
}

// Plan returns the plan of the last successful Apply, or nil.
func (p *Pipeline) Plan() *plan.Plan { return p.plan }

// AuditPlan returns the plan with the policies in audit mode enforced of
// the last successful Apply, or nil when none is in audit mode.
func (p *Pipeline) AuditPlan() *plan.Plan { return p.auditPlan }

// Desired returns the table of the last successful Apply, or nil.
func (p *Pipeline) Desired() *nft.Table { return p.desired }

// DeleteTable removes kube-fence's table from the kernel.
func (p *Pipeline) DeleteTable() error {
	p.desired = nil
	return p.conn.DeleteTable()
}

// OwnershipState says which table flags are in use, for status reports.
func (p *Pipeline) OwnershipState() string { return p.conn.OwnershipState() }

// PortID is the netlink port of the socket that sends every transaction,
// which the kernel stamps on the notifications they cause.
func (p *Pipeline) PortID() uint32 { return p.conn.PortID() }

// Close closes the connections. The table stays in the kernel.
func (p *Pipeline) Close() error {
	err := p.conn.Close()
	if p.cut != nil {
		p.cut.close()
		err = errors.Join(err, p.cut.cutter.Close())
	}
	return err
}

type stopwatch struct {
	wall time.Time
	cpu  time.Duration
}

func now() *stopwatch { return &stopwatch{time.Now(), cpuTime()} }

// lap returns the span since the last lap and starts the next.
func (s *stopwatch) lap() Span {
	w, c := time.Now(), cpuTime()
	sp := Span{Wall: w.Sub(s.wall), CPU: c - s.cpu}
	s.wall, s.cpu = w, c
	return sp
}

// cpuTime is the process's user and system CPU time; one getrusage costs
// about a microsecond, nothing beside a transaction.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Preview returns the plan and the table a pipeline for node would commit
// for the objects of s, through the same compiler and renderer, without a
// connection: what `kube-fence render` prints.
func Preview(s *cluster.Snapshot, node string, opts policy.Options, log nft.DropLog) (*plan.Plan, *nft.Table) {
	p := New(node, opts, nil)
	p.Load(s)
	pl := withinBudget(p.compiler.Plan(), p.budget(), nil)
	r := nft.Renderer{DropLog: log}
	return pl, r.RenderAudit(pl, p.audit.plan(p.compiler))
}
