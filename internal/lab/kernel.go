package lab

import (
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	networkingv1 "k8s.io/api/networking/v1"

	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// KernelEnforcer enforces each lab node through the agent's own pipeline
// (enforce.Pipeline, one per node, in the node's namespace): the first
// snapshot is handed over as a sequence of object additions, every later one
// as the objects that changed, each followed by one Sync: an incremental
// compile, a transaction of the difference, a read back of what it changed
// and a repair if the kernel differs. What the lab proves with packets
// therefore holds for the path the agent runs.
type KernelEnforcer struct {
	// Options are passed to the compiler for every node.
	Options policy.Options
	// Ownership is passed to the dataplane; the default claims the table
	// with the owner and persist flags, as the agent does.
	Ownership kernel.Ownership
	// DropLog says how the tables log dropped packets. The zero value logs
	// at a rate no lab run reaches, and the enforcer reads the records
	// (Witness), so each blocked probe says where it was dropped.
	DropLog nft.DropLog

	drops drops
	// ExistingConnections is the agent's --existing-connections: "" or
	// cut deletes, after each sync, the conntrack entries (in the node's
	// namespace) of connections the new plan denies; keep leaves them.
	ExistingConnections enforce.ExistingConnections

	mu    sync.Mutex
	nodes map[string]*nodePipeline
}

type nodePipeline struct {
	pipe *enforce.Pipeline
	last *cluster.Snapshot // the objects handed over so far
}

// Enforce hands node's pipeline the objects that changed since the last
// call and syncs.
func (e *KernelEnforcer) Enforce(_ context.Context, node *Node, snap *cluster.Snapshot) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nodes == nil {
		e.nodes = map[string]*nodePipeline{}
	}
	np := e.nodes[node.Name()]
	if np == nil {
		log := e.dropLog()
		if !log.Off {
			// Before the first table: no record of it is missed.
			if err := e.drops.watch(node.Name(), node.NS().FD(), log.Defaults().Group); err != nil {
				return err
			}
		}
		pipe, err := enforce.Open(node.Name(), e.Options, kernel.Options{NetNSFD: node.NS().FD(), Ownership: e.Ownership})
		if err != nil {
			return fmt.Errorf("node %s: %w", node.Name(), err)
		}
		pipe.SetDropLog(log)
		if e.ExistingConnections != enforce.ExistingKeep {
			cutter, err := enforce.OpenCutter(node.NS().FD())
			if err != nil {
				pipe.Close()
				return fmt.Errorf("node %s: %w", node.Name(), err)
			}
			pipe.CutConnections(cutter)
		}
		np = &nodePipeline{pipe: pipe, last: &cluster.Snapshot{}}
		e.nodes[node.Name()] = np
	}
	handChanges(np.pipe, np.last, snap)
	np.last = snap
	s, err := np.pipe.Sync()
	if err != nil {
		return fmt.Errorf("node %s: %w", node.Name(), err)
	}
	// The agent cuts off its writer's path; a step of the lab is enforced,
	// cut included, when it returns, since the next one probes the flows.
	if _, err := np.pipe.WaitCut(); err != nil {
		return fmt.Errorf("node %s: %w", node.Name(), err)
	}
	if s.Check != nil && len(s.Check.Differences) > 0 {
		// The lab's kernel is nobody else's: a difference right after a
		// transaction is a bug, even if the repair mended it.
		return fmt.Errorf("node %s: kernel table differed after apply: %s", node.Name(), strings.Join(s.Check.Differences, "; "))
	}
	return nil
}

func (e *KernelEnforcer) dropLog() nft.DropLog {
	if e.DropLog == (nft.DropLog{}) {
		return labDropLog
	}
	return e.DropLog
}

// LogsDrops implements Witness.
func (e *KernelEnforcer) LogsDrops() bool { return !e.dropLog().Off }

// Dropped implements Witness.
func (e *KernelEnforcer) Dropped(since time.Time, f Flow) droplog.Side {
	return e.drops.Dropped(since, f)
}

// WouldDeny implements Witness.
func (e *KernelEnforcer) WouldDeny(since time.Time, f Flow) bool { return e.drops.WouldDeny(since, f) }

// Auditing implements Witness.
func (e *KernelEnforcer) Auditing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, np := range e.nodes {
		if np.pipe.AuditPlan() != nil {
			return true
		}
	}
	return false
}

// Complete implements Witness.
func (e *KernelEnforcer) Complete() error { return e.drops.Complete() }

// handChanges hands c what turns the objects of from into those of to: an
// addition or replacement per object new or different in to, a deletion
// per object only in from. With an empty from, that is to as a sequence of
// additions.
func handChanges(c enforce.Changes, from, to *cluster.Snapshot) {
	diffObjects(from.Namespaces, to.Namespaces, func(n *cluster.Namespace) string { return n.Name }, c.SetNamespace, c.DeleteNamespace)
	diffObjects(from.Pods, to.Pods, (*cluster.Pod).Key, c.SetPod, c.DeletePod)
	diffObjects(from.Policies, to.Policies, func(np *networkingv1.NetworkPolicy) string { return np.Namespace + "/" + np.Name },
		c.SetPolicy, c.DeletePolicy)
	diffObjects(from.Nodes, to.Nodes, func(n *cluster.Node) string { return n.Name }, c.SetNode, c.DeleteNode)
	diffObjects(from.ClusterNetworkPolicies, to.ClusterNetworkPolicies, func(p *cluster.ClusterNetworkPolicy) string { return p.Name },
		c.SetClusterNetworkPolicy, c.DeleteClusterNetworkPolicy)
}

func diffObjects[T any](from, to []*T, key func(*T) string, set func(*T), del func(string)) {
	old := make(map[string]*T, len(from))
	for _, o := range from {
		old[key(o)] = o
	}
	for _, o := range to {
		k := key(o)
		if prev, ok := old[k]; !ok || !reflect.DeepEqual(prev, o) {
			set(o)
		}
		delete(old, k)
	}
	for _, o := range from {
		if _, gone := old[key(o)]; gone {
			del(key(o))
		}
	}
}

// Plan returns the last plan enforced on node, or nil.
func (e *KernelEnforcer) Plan(node string) *plan.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	if np := e.nodes[node]; np != nil {
		return np.pipe.Plan()
	}
	return nil
}

// Desired returns the table last committed on node, as rendered, or nil.
func (e *KernelEnforcer) Desired(node string) *nft.Table {
	e.mu.Lock()
	defer e.mu.Unlock()
	if np := e.nodes[node]; np != nil {
		return np.pipe.Desired()
	}
	return nil
}

// Close closes the netlink connections; the tables go with the namespaces.
func (e *KernelEnforcer) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, np := range e.nodes {
		errs = append(errs, np.pipe.Close())
	}
	e.nodes = nil
	e.drops.close()
	return errors.Join(errs...)
}
