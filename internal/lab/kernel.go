package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// KernelEnforcer is the real pipeline the agent runs, driven by the lab: the
// snapshot is compiled for each node, rendered to kube-fence's table and
// synced into the node's namespace over netlink, then read back and compared.
// What the lab proves with packets therefore holds for the agent.
type KernelEnforcer struct {
	// Options are passed to the compiler for every node.
	Options policy.Options
	// Ownership is passed to the dataplane; the default claims the table
	// with the owner and persist flags, as the agent does.
	Ownership nft.Ownership

	mu    sync.Mutex
	conns map[string]*nft.Conn
	plans map[string]*plan.Plan
}

// Enforce compiles and applies the snapshot for node.
func (e *KernelEnforcer) Enforce(_ context.Context, node *Node, snap *cluster.Snapshot) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns == nil {
		e.conns, e.plans = map[string]*nft.Conn{}, map[string]*plan.Plan{}
	}
	conn := e.conns[node.Name()]
	if conn == nil {
		var err error
		conn, err = nft.Open(nft.Options{NetNSFD: node.NS().FD(), Ownership: e.Ownership})
		if err != nil {
			return fmt.Errorf("node %s: %w", node.Name(), err)
		}
		e.conns[node.Name()] = conn
	}
	pl := policy.Compile(snap, node.Name(), e.Options)
	want := nft.Render(pl)
	if _, err := conn.Sync(want); err != nil {
		return fmt.Errorf("node %s: %w", node.Name(), err)
	}
	d, err := conn.Verify(want)
	if err != nil {
		return fmt.Errorf("node %s: read back: %w", node.Name(), err)
	}
	if !d.Empty() {
		return fmt.Errorf("node %s: kernel table differs after apply: %s", node.Name(), strings.Join(d.Differences, "; "))
	}
	e.plans[node.Name()] = pl
	return nil
}

// Plan returns the last plan enforced on node, or nil.
func (e *KernelEnforcer) Plan(node string) *plan.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.plans[node]
}

// Table reads node's table back from the kernel.
func (e *KernelEnforcer) Table(node string) (*nft.Table, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	conn := e.conns[node]
	if conn == nil {
		return nil, fmt.Errorf("node %s: nothing enforced yet", node)
	}
	return conn.Read()
}

// Close closes the netlink connections; the tables go with the namespaces.
func (e *KernelEnforcer) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, c := range e.conns {
		errs = append(errs, c.Close())
	}
	e.conns = nil
	return errors.Join(errs...)
}
