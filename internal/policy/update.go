package policy

import (
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
)

// Keeping a compiler's state current as objects change. The principle: a
// change of a pod can only change whether that pod's own addresses are in
// a peer's set, and a change of a namespace's labels only whether the
// addresses of that namespace's pods are. So each change lists the sets
// (leaves) that may change and the addresses (points) to decide again in
// them; setStore.update then decides them and carries what changed through
// every union and difference built from those leaves.

// touched collects the leaves and points a batch of changes may affect.
type touched map[setID][]point

func (t touched) add(id setID, pods ...*cluster.Pod) {
	for _, p := range pods {
		if p == nil {
			continue
		}
		for _, ip := range p.IPs {
			if ip.IsValid() {
				t[id] = append(t[id], pointOf(ip))
			}
		}
	}
}

// member decides whether a leaf holds a point, from the current state.
func (c *compiler) member(id setID, pt point) bool {
	d, ok := c.leaves[id]
	if !ok {
		return c.sets.get(id).Contains(pt.key, pt.v4) // not a leaf that changes
	}
	for _, pod := range c.addrPods[pt] {
		if d.named == nil {
			if c.selects(d.peer, pod) {
				return true
			}
			continue
		}
		if c.inScope(d.named.peer, pod, pt) && serves(pod, d.named.name, d.num) {
			return true
		}
	}
	return false
}

// inScope reports whether a named map's peer covers pod at address pt.
func (c *compiler) inScope(p *peer, pod *cluster.Pod, pt point) bool {
	switch {
	case p == nil:
		return true
	case p.block:
		return p.addrs.Contains(pt.key, pt.v4)
	}
	return c.selects(p, pod)
}

// podChanged moves the state from old to new, either of which may be nil or
// not enforceable (then it counts as absent), and lists what may change.
func (c *compiler) podChanged(old, new *cluster.Pod, t touched) {
	if old != nil && !old.Enforceable() {
		old = nil
	}
	if new != nil && !new.Enforceable() {
		new = nil
	}
	if old == nil && new == nil {
		return
	}
	ref := new
	if ref == nil {
		ref = old
	}
	ns, key := podNamespace(ref), podNamespace(ref)+"/"+ref.Name
	if old != nil {
		c.unindexPod(old, ns, key)
	}
	if new != nil {
		if _, ok := c.nsLabels[ns]; !ok {
			// A namespace known only from its pods; no pod of it could be
			// selected before, so only this pod's addresses change.
			c.nsLabels[ns] = namespaceLabels(ns, nil)
			c.reselectNamespace(ns)
		}
		c.indexPod(new, ns, key)
	}
	c.forgetServing(old, new)
	candidates := append(slices.Clip(c.peersByNS[ns]), c.nsPeers...)
	for _, p := range candidates {
		// p.pods is always the pods p selects under the current namespace
		// labels (namespaceChanged keeps it so), so a label match answers
		// whether old is in it without scanning it.
		was := old != nil && c.selects(p, old)
		is := new != nil && c.selects(p, new)
		if was {
			p.pods = slices.DeleteFunc(p.pods, func(q *cluster.Pod) bool { return q == old })
		}
		if is {
			p.pods = append(p.pods, new)
		}
		if was || is {
			t.add(p.id, old, new)
		}
	}
	c.namedChanged(old, new, t)
}

func (c *compiler) indexPod(p *cluster.Pod, ns, key string) {
	c.podsByNS[ns] = append(c.podsByNS[ns], p)
	c.indexAddrs(p)
	for k, byValue := range c.byLabel {
		if v, ok := p.Labels[k]; ok {
			byValue[v] = append(byValue[v], p)
		}
	}
	if p.NodeName == c.node && c.locals[key] == nil {
		c.locals[key] = p
	}
}

func (c *compiler) unindexPod(p *cluster.Pod, ns, key string) {
	same := func(q *cluster.Pod) bool { return q == p }
	c.podsByNS[ns] = slices.DeleteFunc(c.podsByNS[ns], same)
	for _, ip := range p.IPs {
		if ip.IsValid() {
			k := pointOf(ip)
			if rest := slices.DeleteFunc(c.addrPods[k], same); len(rest) > 0 {
				c.addrPods[k] = rest
			} else {
				delete(c.addrPods, k)
			}
		}
	}
	for k, byValue := range c.byLabel {
		if v, ok := p.Labels[k]; ok {
			byValue[v] = slices.DeleteFunc(byValue[v], same)
		}
	}
	if c.locals[key] == p {
		delete(c.locals, key)
	}
}

// forgetServing drops the cluster-wide lists of servers of the named ports
// the pods declare: they are rebuilt when next needed.
func (c *compiler) forgetServing(pods ...*cluster.Pod) {
	for _, p := range pods {
		if p == nil {
			continue
		}
		for _, cp := range p.Ports {
			if n, _, ok := namedContainerPort(cp); ok {
				delete(c.serving, n)
			}
		}
	}
}

// namedChanged lists the named-port sets a pod change may affect, giving
// maps the numbers the new pod serves that they did not know yet.
func (c *compiler) namedChanged(old, new *cluster.Pod, t touched) {
	names := map[string]bool{}
	for _, p := range []*cluster.Pod{old, new} {
		if p == nil {
			continue
		}
		for _, cp := range p.Ports {
			if cp.Name != "" {
				names[cp.Name] = true
			}
		}
	}
	for name := range names {
		for _, nm := range c.namedByName[name] {
			c.namedPods(nm, t, false, old, new)
		}
	}
}

// namedPods lists nm's sets that the given pods may enter or leave; all
// says the pods' scope is known to have changed, so every set they serve
// counts.
func (c *compiler) namedPods(nm *namedMap, t touched, all bool, pods ...*cluster.Pod) {
	for _, pod := range pods {
		if pod == nil || !all && !c.mayServe(nm, pod) {
			continue
		}
		for _, d := range declaredNames(pod) {
			if d.portName != nm.name {
				continue
			}
			id, ok := nm.nums[d.port]
			if !ok {
				id = nm.addNum(c, d.port, addrset.Spans{})
			}
			t.add(id, pods...)
		}
	}
}

// mayServe reports whether pod can be in one of nm's sets, before the
// address-by-address decision.
func (c *compiler) mayServe(nm *namedMap, pod *cluster.Pod) bool {
	switch p := nm.peer; {
	case p == nil || p.block:
		return true
	default:
		return slices.Contains(p.pods, pod) || c.selects(p, pod)
	}
}

// namespaceChanged moves a namespace's labels to now (nil: the Namespace
// object is gone; its pods, if any, keep the labels every namespace has).
func (c *compiler) namespaceChanged(name string, now *cluster.Namespace, t touched) {
	var next labels.Set
	switch {
	case now != nil:
		next = namespaceLabels(name, now.Labels)
	default:
		next = namespaceLabels(name, nil)
	}
	prev, known := c.nsLabels[name]
	c.nsLabels[name] = next
	c.reselectNamespace(name)
	if !known {
		return // no pod lived there: no set can change
	}
	pods := c.podsByNS[name]
	for _, p := range c.nsPeers {
		was, is := p.nsSel.Matches(prev), p.nsSel.Matches(next)
		if was == is {
			continue
		}
		for _, pod := range pods {
			if !p.podSel.Matches(pod.Labels) {
				continue
			}
			if is {
				p.pods = append(p.pods, pod)
			} else {
				p.pods = slices.DeleteFunc(p.pods, func(q *cluster.Pod) bool { return q == pod })
			}
			t.add(p.id, pod)
			for _, nm := range p.named {
				c.namedPods(nm, t, true, pod)
			}
		}
	}
}

// reselectNamespace updates the memoized namespace selections for one
// namespace's current labels.
func (c *compiler) reselectNamespace(name string) {
	l := c.nsLabels[name]
	for _, s := range c.nsSelections {
		in := slices.Contains(s.names, name)
		switch want := s.sel.Matches(l); {
		case want && !in:
			s.names = append(s.names, name)
		case !want && in:
			s.names = slices.DeleteFunc(slices.Clone(s.names), func(n string) bool { return n == name })
		}
	}
}

// policyChanged replaces, adds (np set) or removes (np nil) one policy.
// Its compiled form is dropped; the next plan compiles the new object when
// it selects a pod of the node.
func (c *compiler) policyChanged(key string, np *networkingv1.NetworkPolicy) {
	delete(c.byPolicy, key)
	c.policies = slices.DeleteFunc(c.policies, func(q *networkingv1.NetworkPolicy) bool {
		return policyNamespace(q)+"/"+q.Name == key
	})
	if np == nil {
		return
	}
	i, _ := slices.BinarySearchFunc(c.policies, np, comparePolicies)
	c.policies = slices.Insert(c.policies, i, np)
}

// cnpChanged replaces, adds (p set) or removes (p nil) one
// ClusterNetworkPolicy. Its compiled form is dropped; the next plan compiles
// the new object. Pods and namespaces moving in and out of its subject need
// nothing here: every plan decides the subjects of the node's pods again.
func (c *compiler) cnpChanged(name string, p *cluster.ClusterNetworkPolicy) {
	delete(c.byCNP, name)
	c.cnps = slices.DeleteFunc(c.cnps, func(q *cluster.ClusterNetworkPolicy) bool { return q.Name == name })
	if p == nil {
		return
	}
	i, _ := slices.BinarySearchFunc(c.cnps, p, compareCNPs)
	c.cnps = slices.Insert(c.cnps, i, p)
}

// setNodes replaces the Node objects the plan's node addresses come from.
func (c *compiler) setNodes(nodes []*cluster.Node) {
	c.nodeObjs = nodes
	c.nodeAddrs, c.podCIDRs = nodeSets(nodes, c.node)
}
