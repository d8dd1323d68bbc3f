// Package nfttest provides an in-memory stand-in for kernel.Conn: it applies
// the same deltas the netlink connection sends to a table held in memory,
// and can be told to fail a transaction or a read, so code driving the
// dataplane (the agent's scheduling, the pipeline's repair decisions) is
// tested without root. The real-kernel tests stay beside it.
package nfttest

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/kube-fence/kube-fence/internal/nft"
)

// ErrInjected is the error a Conn returns for an injected failure.
var ErrInjected = errors.New("injected failure")

// Conn is an in-memory nftables holding kube-fence's table. It is safe for
// concurrent use, so a test may tamper with the table while the code under
// test runs.
type Conn struct {
	mu        sync.Mutex
	kernel    *nft.Table // nil: no table
	committed *nft.Table // what the last transaction left, as kernel.Conn keeps it
	failApply int
	failRead  int
	applies   int
	closed    bool
}

// New returns a Conn with no table.
func New() *Conn { return &Conn{} }

// FailApplies makes the next n transactions fail with ErrInjected, leaving
// the table as it was.
func (c *Conn) FailApplies(n int) { c.mu.Lock(); c.failApply = n; c.mu.Unlock() }

// FailReads makes the next n reads (Verify, VerifyApplied, and the
// read a Repair starts with) fail with ErrInjected.
func (c *Conn) FailReads(n int) { c.mu.Lock(); c.failRead = n; c.mu.Unlock() }

// Tamper changes the table as another process would; f gets a copy to
// change (nil when there is no table) and returns the new table.
func (c *Conn) Tamper(f func(*nft.Table) *nft.Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kernel = f(clone(c.kernel))
}

// Table returns a copy of the table the fake kernel holds, nil when none.
func (c *Conn) Table() *nft.Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	return clone(c.kernel)
}

// Transactions returns the number of transactions committed so far.
func (c *Conn) Transactions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applies
}

// Closed reports whether Close was called.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Conn) readFails() bool {
	if c.failRead > 0 {
		c.failRead--
		return true
	}
	return false
}

// Sync implements enforce.Conn like kernel.Conn.Sync: the difference from the
// last committed table, or a repair when that is unknown.
func (c *Conn) Sync(want *nft.Table) (*nft.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.committed == nil {
		return c.repair(want)
	}
	return c.apply(want, nft.Diff(want, c.committed), false)
}

// Repair implements enforce.Conn: the difference from the table as it is.
func (c *Conn) Repair(want *nft.Table) (*nft.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.repair(want)
}

// Rebuild implements enforce.Conn like kernel.Conn.Rebuild: the table
// deleted and created again in one transaction.
func (c *Conn) Rebuild(want *nft.Table) (*nft.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committed = nil
	d := nft.Diff(want, nil)
	d.Differences = append(d.Differences[:0], "table rebuilt after a refused repair")
	return c.apply(want, d, true)
}

func (c *Conn) repair(want *nft.Table) (*nft.Result, error) {
	c.committed = nil
	if c.readFails() {
		return nil, ErrInjected
	}
	d := nft.Diff(want, c.kernel)
	if d.Rebuild {
		rebuild := nft.Diff(want, nil)
		rebuild.Differences = d.Differences
		return c.apply(want, rebuild, true)
	}
	return c.apply(want, d, false)
}

func (c *Conn) apply(want *nft.Table, d *nft.Delta, rebuild bool) (*nft.Result, error) {
	res := &nft.Result{Delta: d, Rebuilt: rebuild}
	if d.Empty() && !rebuild {
		c.committed = want
		return res, nil
	}
	res.Messages = messages(d)
	if c.failApply > 0 {
		c.failApply--
		c.committed = nil
		return res, ErrInjected
	}
	base := c.kernel
	if rebuild {
		base = nil
	}
	c.kernel = Apply(base, d)
	c.committed = want
	c.applies++
	return res, nil
}

// messages counts one message per object and per set touched by elements,
// a stand-in for the netlink batch's size.
func messages(d *nft.Delta) int {
	return 2 + len(d.AddSets) + len(d.DelSets) + len(d.AddChains) + len(d.DelChains) + len(d.ReplaceRules) + len(d.AddElems) + len(d.DelElems)
}

// VerifyApplied implements enforce.Conn by comparing the whole table.
func (c *Conn) VerifyApplied(want *nft.Table, _ *nft.Delta) (*nft.Delta, error) {
	return c.Verify(want)
}

// Verify implements enforce.Conn.
func (c *Conn) Verify(want *nft.Table) (*nft.Delta, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readFails() {
		return nil, ErrInjected
	}
	return nft.Diff(want, c.kernel), nil
}

// DeleteTable implements enforce.Conn.
func (c *Conn) DeleteTable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kernel, c.committed = nil, nil
	return nil
}

// OwnershipState implements enforce.Conn.
func (c *Conn) OwnershipState() string { return "off (in-memory fake)" }

// PortID implements enforce.Conn; the fake sends no notifications.
func (c *Conn) PortID() uint32 { return 0 }

// Close implements enforce.Conn.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// Apply returns the table d turns have into, as the kernel would commit
// it; have is not modified. A nil have is no table.
func Apply(have *nft.Table, d *nft.Delta) *nft.Table {
	t := clone(have)
	if t == nil {
		t = nft.NewTable()
	}
	for _, name := range d.DelChains {
		delete(t.Chains, name)
	}
	for _, name := range d.DelSets {
		delete(t.Sets, name)
	}
	for _, s := range d.AddSets {
		t.AddSet(&nft.Set{Name: s.Name, Type: s.Type, Elems: slices.Clone(s.Elements())})
	}
	for _, ch := range append(slices.Clone(d.AddChains), d.ReplaceRules...) {
		t.AddChain(&nft.Chain{Name: ch.Name, Hook: ch.Hook, Rules: slices.Clone(ch.Rules)})
	}
	for _, name := range slices.Sorted(maps.Keys(d.DelElems)) {
		if s := t.Sets[name]; s != nil {
			s.Elems = slices.DeleteFunc(s.Elems, func(e nft.Elem) bool {
				return slices.ContainsFunc(d.DelElems[name], func(x nft.Elem) bool { return bytes.Equal(x.Key, e.Key) })
			})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.AddElems)) {
		if s := t.Sets[name]; s != nil {
			s.Elems = append(s.Elems, d.AddElems[name]...)
			nft.SortElems(s.Elems)
		}
	}
	return t
}

// clone copies the table's maps and sets, so changing the copy's elements
// leaves the original alone. Rules are shared: nothing changes them.
func clone(t *nft.Table) *nft.Table {
	if t == nil {
		return nil
	}
	out := nft.NewTable()
	for name, s := range t.Sets {
		out.Sets[name] = &nft.Set{Name: s.Name, Type: s.Type, Elems: slices.Clone(s.Elements())}
	}
	for name, ch := range t.Chains {
		out.Chains[name] = &nft.Chain{Name: ch.Name, Hook: ch.Hook, Rules: slices.Clone(ch.Rules)}
	}
	return out
}
