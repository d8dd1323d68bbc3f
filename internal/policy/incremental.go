package policy

import (
	"maps"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Compiler keeps the plan of one node current as the cluster changes, at a
// cost that follows the change rather than the cluster. It holds the
// objects it was given and, between calls, the compiler's indexes, memos and
// address sets; Plan then recomputes only what the changes since the last
// Plan can affect: a pod change decides that pod's addresses again in the
// peer sets, a namespace relabel the addresses of its pods, a policy change
// recompiles that policy, and only profiles built from something that
// changed are built again.
//
// Plan returns exactly what Compile returns for a snapshot of the same
// objects; Compile is the reference, and the tests check the two agree
// after long random sequences of changes.
//
// Objects passed in must not be modified afterwards: a change is a new
// object, as informers deliver them. A Compiler is not safe for concurrent
// use.
type Compiler struct {
	node string
	opts Options

	namespaces map[string]*cluster.Namespace
	pods       map[string]*cluster.Pod // by namespace/name, namespace defaulted
	policies   map[string]*networkingv1.NetworkPolicy
	nodes      map[string]*cluster.Node
	// clusterPolicies are held and returned by Snapshot; the compiler
	// does not enforce them yet.
	clusterPolicies map[string]*cluster.ClusterNetworkPolicy

	state *compiler               // nil until the first Plan
	known map[string]*cluster.Pod // the pods as state last saw them
	dirty struct {
		pods, namespaces, policies map[string]struct{}
		nodes                      bool
	}
	baseSets int // sets held after the last full compile
	last     *plan.Plan
	stats    UpdateStats
}

// UpdateStats says what the last Plan call did.
type UpdateStats struct {
	// Full is true when the plan was compiled from scratch: the first
	// time, after a burst of changes too large to apply one by one, or to
	// drop what earlier updates left behind.
	Full bool
	// The objects changed since the Plan before.
	Pods, Namespaces, Policies int
	Nodes                      bool
}

// Bursts above these sizes are compiled from scratch: applying thousands of
// changes one at a time costs more than one full compile.
const (
	maxIncrementalPods       = 512
	maxIncrementalNamespaces = 32
	maxIncrementalPolicies   = 128
)

// NewCompiler returns a Compiler for node with no objects.
func NewCompiler(node string, opts Options) *Compiler {
	c := &Compiler{
		node:       node,
		opts:       opts,
		namespaces: map[string]*cluster.Namespace{},
		pods:       map[string]*cluster.Pod{},
		policies:   map[string]*networkingv1.NetworkPolicy{},
		nodes:      map[string]*cluster.Node{},

		clusterPolicies: map[string]*cluster.ClusterNetworkPolicy{},
	}
	c.clearDirty()
	return c
}

func (c *Compiler) clearDirty() {
	c.dirty.pods = map[string]struct{}{}
	c.dirty.namespaces = map[string]struct{}{}
	c.dirty.policies = map[string]struct{}{}
	c.dirty.nodes = false
}

// SetPod adds or replaces a pod.
func (c *Compiler) SetPod(p *cluster.Pod) {
	key := podNamespace(p) + "/" + p.Name
	c.pods[key] = p
	c.dirty.pods[key] = struct{}{}
}

// DeletePod removes the pod namespace/name.
func (c *Compiler) DeletePod(key string) {
	if _, ok := c.pods[key]; ok {
		delete(c.pods, key)
		c.dirty.pods[key] = struct{}{}
	}
}

// SetNamespace adds or replaces a namespace.
func (c *Compiler) SetNamespace(ns *cluster.Namespace) {
	c.namespaces[ns.Name] = ns
	c.dirty.namespaces[ns.Name] = struct{}{}
}

// DeleteNamespace removes a namespace object (its pods, if any, keep the
// labels every namespace has).
func (c *Compiler) DeleteNamespace(name string) {
	if _, ok := c.namespaces[name]; ok {
		delete(c.namespaces, name)
		c.dirty.namespaces[name] = struct{}{}
	}
}

// SetPolicy adds or replaces a NetworkPolicy.
func (c *Compiler) SetPolicy(np *networkingv1.NetworkPolicy) {
	key := policyNamespace(np) + "/" + np.Name
	c.policies[key] = np
	c.dirty.policies[key] = struct{}{}
}

// DeletePolicy removes the NetworkPolicy namespace/name.
func (c *Compiler) DeletePolicy(key string) {
	if _, ok := c.policies[key]; ok {
		delete(c.policies, key)
		c.dirty.policies[key] = struct{}{}
	}
}

// SetNode adds or replaces a Node object; only the compiler's own node's
// addresses and pod CIDRs matter.
func (c *Compiler) SetNode(n *cluster.Node) {
	c.nodes[n.Name] = n
	c.dirty.nodes = true
}

// DeleteNode removes a Node object.
func (c *Compiler) DeleteNode(name string) {
	if _, ok := c.nodes[name]; ok {
		delete(c.nodes, name)
		c.dirty.nodes = true
	}
}

// SetClusterNetworkPolicy adds or replaces a ClusterNetworkPolicy.
func (c *Compiler) SetClusterNetworkPolicy(p *cluster.ClusterNetworkPolicy) {
	c.clusterPolicies[p.Name] = p
}

// DeleteClusterNetworkPolicy removes the ClusterNetworkPolicy name.
func (c *Compiler) DeleteClusterNetworkPolicy(name string) {
	delete(c.clusterPolicies, name)
}

// Load adds or replaces every object of the snapshot (nil entries are
// skipped), as if each had been set on its own.
func (c *Compiler) Load(s *cluster.Snapshot) {
	for _, ns := range s.Namespaces {
		if ns != nil {
			c.SetNamespace(ns)
		}
	}
	for _, p := range s.Pods {
		if p != nil {
			c.SetPod(p)
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
	for _, p := range s.ClusterNetworkPolicies {
		if p != nil {
			c.SetClusterNetworkPolicy(p)
		}
	}
}

// Snapshot returns the objects the Compiler holds, in no particular order.
func (c *Compiler) Snapshot() *cluster.Snapshot {
	return &cluster.Snapshot{
		Namespaces: slices.Collect(maps.Values(c.namespaces)),
		Pods:       slices.Collect(maps.Values(c.pods)),
		Policies:   slices.Collect(maps.Values(c.policies)),
		Nodes:      slices.Collect(maps.Values(c.nodes)),

		ClusterNetworkPolicies: slices.Collect(maps.Values(c.clusterPolicies)),
	}
}

// LastUpdate says what the last Plan call did.
func (c *Compiler) LastUpdate() UpdateStats { return c.stats }

// Plan returns the node's plan for the objects as they are now. Profiles
// and address sets nothing changed are the same values as in the previous
// plan, which lets the dataplane skip them.
func (c *Compiler) Plan() *plan.Plan {
	c.stats = UpdateStats{Pods: len(c.dirty.pods), Namespaces: len(c.dirty.namespaces),
		Policies: len(c.dirty.policies), Nodes: c.dirty.nodes}
	switch {
	case c.state == nil || c.tooMuch():
		c.rebuild()
	case c.stats.Pods+c.stats.Namespaces+c.stats.Policies == 0 && !c.stats.Nodes:
	default:
		c.update()
	}
	c.clearDirty()
	return c.last
}

func (c *Compiler) tooMuch() bool {
	return c.stats.Pods > maxIncrementalPods || c.stats.Namespaces > maxIncrementalNamespaces ||
		c.stats.Policies > maxIncrementalPolicies || c.state.sets.size() > 2*c.baseSets+4096
}

func (c *Compiler) rebuild() {
	c.stats.Full = true
	c.state = newCompiler(c.Snapshot(), c.node)
	c.known = maps.Clone(c.pods)
	c.last = c.state.plan(c.opts)
	c.baseSets = c.state.sets.size()
}

// update applies the changes since the last plan to the state: namespaces
// first, so pods are judged with their namespace's current labels.
func (c *Compiler) update() {
	t := touched{}
	for name := range c.dirty.namespaces {
		c.state.namespaceChanged(name, c.namespaces[name], t)
	}
	for key := range c.dirty.pods {
		now := c.pods[key]
		c.state.podChanged(c.known[key], now, t)
		if now == nil {
			delete(c.known, key)
		} else {
			c.known[key] = now
		}
	}
	for key := range c.dirty.policies {
		c.state.policyChanged(key, c.policies[key])
	}
	if c.dirty.nodes {
		c.state.setNodes(slices.Collect(maps.Values(c.nodes)))
	}
	c.state.sets.update(t, c.state.member)
	c.last = c.state.plan(c.opts)
}
