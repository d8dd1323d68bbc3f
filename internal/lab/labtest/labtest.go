// Package labtest holds an enforcer simple enough to trust, for tests of the
// lab (and of its users) that must see traffic blocked before kube-fence's
// own enforcer is plugged in: it drops forwarded traffic to chosen
// addresses in a table of its own, and records every call it gets.
package labtest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
)

// TableName is the table the DropEnforcer programs on each node.
const TableName = "lab-test"

// Drop drops forwarded packets opening a connection to Dst, of one IP protocol (unix.IPPROTO_TCP,
// ...) or of any when Proto is 0.
type Drop struct {
	Dst   netip.Addr
	Proto uint8
}

// Call is one Enforce call the enforcer received.
type Call struct {
	Node string
	Snap *cluster.Snapshot
}

// DropEnforcer programs, on every node, table inet lab-test with a forward
// chain holding one drop rule per Drop that Rules returns for that node.
// Each call replaces the table's rules in one transaction.
type DropEnforcer struct {
	Rules func(node string, snap *cluster.Snapshot) []Drop

	mu     sync.Mutex
	calls  []Call
	closed bool
}

var _ lab.Enforcer = (*DropEnforcer)(nil)

// Enforce implements lab.Enforcer.
func (e *DropEnforcer) Enforce(_ context.Context, node *lab.Node, snap *cluster.Snapshot) error {
	e.mu.Lock()
	e.calls = append(e.calls, Call{Node: node.Name(), Snap: lab.Clone(snap)})
	e.mu.Unlock()
	var drops []Drop
	if e.Rules != nil {
		drops = e.Rules(node.Name(), snap)
	}
	c, err := nftables.New(nftables.WithNetNSFd(node.NS().FD()))
	if err != nil {
		return fmt.Errorf("nftables in node %s: %w", node.Name(), err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: TableName})
	c.FlushTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
	})
	for _, d := range drops {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: dropExprs(d)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("program %s on node %s: %w", TableName, node.Name(), err)
	}
	return nil
}

func dropExprs(d Drop) []expr.Any {
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(16) // IPv4 daddr
	if d.Dst.Is6() {
		proto, offset = unix.NFPROTO_IPV6, 24
	}
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(d.Dst.BitLen() / 8)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: d.Dst.AsSlice()},
	}
	// Only new connections: replies of the dropped pod's own connections
	// must still reach it.
	e = append(e,
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
	if d.Proto != 0 {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{d.Proto}})
	}
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
}

// Calls returns the Enforce calls so far.
func (e *DropEnforcer) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Call(nil), e.calls...)
}

// Closed reports whether Close was called.
func (e *DropEnforcer) Closed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Close implements lab.Enforcer. The table goes with the node namespaces.
func (e *DropEnforcer) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	return nil
}

// DropTo returns Rules that drop everything to the given pods, by key.
func DropTo(keys ...string) func(string, *cluster.Snapshot) []Drop {
	return func(_ string, snap *cluster.Snapshot) []Drop {
		var out []Drop
		for _, p := range snap.Pods {
			for _, k := range keys {
				if p.Key() == k {
					for _, ip := range p.IPs {
						out = append(out, Drop{Dst: ip})
					}
				}
			}
		}
		return out
	}
}
