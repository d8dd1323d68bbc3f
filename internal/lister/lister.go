// Package lister reads a cluster snapshot from a live API server once, for
// commands that look at a cluster without enforcing anything (`kube-fence
// explain --kubeconfig`). It only lists; it never writes. The agent keeps its
// snapshot current with informers instead (internal/agent).
package lister

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// Snapshot lists namespaces, nodes, pods and NetworkPolicies. Objects that
// cannot be converted (an unreadable address) are left out and described in
// the returned warnings, as the agent leaves them out of enforcement.
func Snapshot(ctx context.Context, c kubernetes.Interface) (*cluster.Snapshot, []string, error) {
	s := &cluster.Snapshot{}
	var warnings []string
	nss, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	for i := range nss.Items {
		s.Namespaces = append(s.Namespaces, cluster.NamespaceFromAPI(&nss.Items[i]))
	}
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		n, err := cluster.NodeFromAPI(&nodes.Items[i])
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		s.Nodes = append(s.Nodes, n)
	}
	pods, err := c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list pods: %w", err)
	}
	for i := range pods.Items {
		p, err := cluster.PodFromAPI(&pods.Items[i])
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		s.Pods = append(s.Pods, p)
	}
	nps, err := c.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list networkpolicies: %w", err)
	}
	for i := range nps.Items {
		s.Policies = append(s.Policies, &nps.Items[i])
	}
	return s, warnings, nil
}
