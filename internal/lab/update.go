package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

// Update makes the lab match snap, the complete desired state (start from
// Snapshot and change it): policies added, changed or deleted, namespaces
// and pods relabelled, pods added or removed. A new pod gets its namespace
// and servers first; then the enforcer runs again on every node.
//
// Pods the lab already runs keep their addresses and node when snap leaves
// them out. Pods whose addresses, node, ports or host networking change are
// rebuilt. The nodes cannot change; an empty node list means "the same".
// A pod being removed waits for probes in flight to finish.
func (l *Lab) Update(ctx context.Context, snap *cluster.Snapshot) error {
	l.update.Lock()
	defer l.update.Unlock()
	l.mu.Lock()
	cur := l.snap
	l.mu.Unlock()

	s := Clone(snap)
	if len(s.Nodes) == 0 {
		s.Nodes = Clone(cur).Nodes
	}
	carryOver(s, cur)
	if err := scenario.Normalize(s); err != nil {
		return err
	}
	if err := sameNodes(cur.Nodes, s.Nodes); err != nil {
		return &scenario.InvalidError{Problems: []string{err.Error()}}
	}

	var stop, start []*cluster.Pod
	l.mu.Lock()
	want := map[string]*cluster.Pod{}
	for _, p := range s.Pods {
		if runnable(p) {
			want[p.Key()] = p
		}
	}
	for key, lp := range l.pods {
		if w, ok := want[key]; !ok || rewire(lp.pod, w) {
			stop = append(stop, lp.pod)
		}
	}
	for _, p := range s.Pods {
		if lp, ok := l.pods[p.Key()]; runnable(p) && (!ok || rewire(lp.pod, p)) {
			start = append(start, p)
		}
	}
	l.mu.Unlock()

	if len(stop) > 0 {
		l.inflight.Lock()
		var errs []error
		for _, p := range stop {
			errs = append(errs, l.stopPod(p.Key()))
		}
		l.inflight.Unlock()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	for _, p := range start {
		if err := l.startPod(p); err != nil {
			return err
		}
	}
	if err := l.topo.Ready(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	for _, lp := range l.pods {
		lp.pod = podIn(s, lp.pod.Key()) // new labels, same wiring
	}
	l.snap = s
	l.mu.Unlock()
	return l.enforce(ctx, s)
}

// carryOver gives pods of s that have no address or node the ones they have
// in cur.
func carryOver(s, cur *cluster.Snapshot) {
	for _, p := range s.Pods {
		old := podIn(cur, p.Key())
		if old == nil {
			continue
		}
		if p.NodeName == "" {
			p.NodeName = old.NodeName
		}
		if len(p.IPs) == 0 && !p.HostNetwork && old.NodeName == p.NodeName {
			p.IPs = slices.Clone(old.IPs)
		}
	}
}

func podIn(s *cluster.Snapshot, key string) *cluster.Pod {
	for _, p := range s.Pods {
		if p.Key() == key {
			return p
		}
	}
	return nil
}

// rewire reports whether a pod's namespace or servers must be rebuilt to
// go from old to new; labels alone only concern the enforcer.
func rewire(old, new *cluster.Pod) bool {
	return old.NodeName != new.NodeName || old.HostNetwork != new.HostNetwork ||
		!slices.Equal(old.IPs, new.IPs) || !slices.Equal(old.Ports, new.Ports)
}

func sameNodes(old, new []*cluster.Node) error {
	if len(old) != len(new) {
		return fmt.Errorf("nodes: the lab has %d nodes, the update %d; nodes cannot change in a running lab", len(old), len(new))
	}
	for i := range old {
		if old[i].Name != new[i].Name || !slices.Equal(old[i].PodCIDRs, new[i].PodCIDRs) {
			return fmt.Errorf("node %s: nodes cannot change in a running lab (got %s %v, have %s %v)",
				new[i].Name, new[i].Name, new[i].PodCIDRs, old[i].Name, old[i].PodCIDRs)
		}
	}
	return nil
}

// Clone returns a deep copy of a snapshot.
func Clone(s *cluster.Snapshot) *cluster.Snapshot {
	out := &cluster.Snapshot{}
	for _, ns := range s.Namespaces {
		c := *ns
		c.Labels = maps.Clone(ns.Labels)
		out.Namespaces = append(out.Namespaces, &c)
	}
	for _, n := range s.Nodes {
		c := *n
		c.Labels = maps.Clone(n.Labels)
		c.Addresses = slices.Clone(n.Addresses)
		c.PodCIDRs = slices.Clone(n.PodCIDRs)
		out.Nodes = append(out.Nodes, &c)
	}
	for _, p := range s.Pods {
		c := *p
		c.Labels = maps.Clone(p.Labels)
		c.IPs = slices.Clone(p.IPs)
		c.Ports = slices.Clone(p.Ports)
		out.Pods = append(out.Pods, &c)
	}
	for _, np := range s.Policies {
		out.Policies = append(out.Policies, np.DeepCopy())
	}
	for _, p := range s.ClusterNetworkPolicies {
		out.ClusterNetworkPolicies = append(out.ClusterNetworkPolicies, p.DeepCopy())
	}
	return out
}
