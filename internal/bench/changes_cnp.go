package bench

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// The ClusterNetworkPolicy changes: an admin policy selecting the pods of
// one namespace of the node added; then, with it in place, changed (another
// peer, another action) and deleted. Each is made and undone like the
// others.

// benchCNP is the admin policy the changes add: the namespace's pods may
// not be reached from one team's namespaces, and may reach pods labelled
// like one pod of the pool on TCP 80.
func benchCNP(ns string, team string, action cluster.CNPAction, peerLabels map[string]string) *cluster.ClusterNetworkPolicy {
	return &cluster.ClusterNetworkPolicy{
		Name: "bench-cnp", Tier: cluster.TierAdmin, Priority: 10,
		Subject: cluster.CNPSubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
		Ingress: []cluster.CNPRule{{Action: action, Peers: []cluster.CNPPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": team}}}}}},
		Egress: []cluster.CNPRule{{Action: cluster.ActionAccept,
			Peers:     []cluster.CNPPeer{{Pods: &cluster.CNPPods{PodSelector: metav1.LabelSelector{MatchLabels: peerLabels}}}},
			Protocols: []cluster.CNPProtocol{{TCP: &cluster.CNPPorts{DestinationPort: &cluster.CNPPort{Number: 80}}}}}},
	}
}

// cnpPeerMove is a pod of another node relabelled into the egress peer of
// the policy findCNPChanges adds (which must be in place): one address
// more in the rule's shared set.
func cnpPeerMove(g *rig, peer map[string]string) (change, error) {
	for _, old := range g.s.Pods {
		if old.HostNetwork || !old.Enforceable() || old.NodeName == synth.NodeName(0) || matchesAll(old.Labels, peer) {
			continue
		}
		p := *old
		p.Labels = peer
		return change{
			kind: "pod relabelled into a clusternetworkpolicy peer",
			desc: fmt.Sprintf("%s on %s: %v -> %v", p.Key(), p.NodeName, old.Labels, labels.Set(peer)),
			do:   func(c enforce.Changes) { c.SetPod(&p) },
			undo: func(c enforce.Changes) { c.SetPod(old) },
		}, nil
	}
	return change{}, fmt.Errorf("no pod to relabel into %v", peer)
}

func matchesAll(l, want map[string]string) bool {
	for k, v := range want {
		if l[k] != v {
			return false
		}
	}
	return true
}

// findCNPChangesAndPeer returns the three changes of the policy, the
// policy and the labels of its egress peer; changed and deleted expect the
// added policy to be in place, which measureChanges arranges.
func findCNPChangesAndPeer(g *rig, pool *cluster.Snapshot) (added, changed, deleted change, base *cluster.ClusterNetworkPolicy, peerLabels map[string]string, err error) {
	var ns string
	for _, p := range g.s.Pods {
		if p.NodeName == synth.NodeName(0) && p.Enforceable() {
			ns = p.Namespace
			break
		}
	}
	if ns == "" || len(pool.Pods) == 0 {
		return added, changed, deleted, nil, nil, fmt.Errorf("no pod on node %s", synth.NodeName(0))
	}
	peer := pool.Pods[len(pool.Pods)/2].Labels
	base = benchCNP(ns, "team-1", cluster.ActionDeny, peer)
	next := benchCNP(ns, "team-2", cluster.ActionPass, peer)
	desc := func(p *cluster.ClusterNetworkPolicy) string {
		return fmt.Sprintf("admin %s: subject namespace %s, ingress %s from team=%s, egress Accept to pods %v on TCP 80",
			p.Name, ns, p.Ingress[0].Action, p.Ingress[0].Peers[0].Namespaces.MatchLabels["team"], peer)
	}
	set := func(p *cluster.ClusterNetworkPolicy) func(c enforce.Changes) {
		return func(c enforce.Changes) { c.SetClusterNetworkPolicy(p) }
	}
	del := func(c enforce.Changes) { c.DeleteClusterNetworkPolicy(base.Name) }
	added = change{kind: "clusternetworkpolicy added", desc: desc(base), do: set(base), undo: del}
	changed = change{kind: "clusternetworkpolicy changed", desc: desc(base) + " -> " + desc(next), do: set(next), undo: set(base)}
	deleted = change{kind: "clusternetworkpolicy deleted", desc: desc(base), do: del, undo: set(base)}
	if !g.try(added, false) {
		return added, changed, deleted, nil, nil, fmt.Errorf("adding %s changes nothing", desc(base))
	}
	return added, changed, deleted, base, peer, nil
}
