// Package lister reads a cluster snapshot from a live API server once, for
// commands that look at a cluster without enforcing anything (`kube-fence
// explain --kubeconfig`). It only lists; it never writes. The agent keeps its
// snapshot current with informers instead (internal/agent).
package lister

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	cnpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// Snapshot lists namespaces, nodes, pods, NetworkPolicies and, when their
// CRD is installed, ClusterNetworkPolicies. Objects that cannot be converted
// (an unreadable address) are left out and described in the returned
// warnings, as the agent leaves them out of enforcement.
func Snapshot(ctx context.Context, c kubernetes.Interface, cnps cnpclient.Interface) (*cluster.Snapshot, []string, error) {
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
	if s.ClusterNetworkPolicies, err = clusterPolicies(ctx, cnps); err != nil {
		return nil, nil, err
	}
	return s, warnings, nil
}

// clusterPolicies lists the ClusterNetworkPolicies; none when the API
// server does not serve them (no CRD: a 404), as the agent then enforces
// none.
func clusterPolicies(ctx context.Context, c cnpclient.Interface) ([]*cluster.ClusterNetworkPolicy, error) {
	list, err := c.PolicyV1beta1().ClusterNetworkPolicies().List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list clusternetworkpolicies: %w", err)
	}
	var out []*cluster.ClusterNetworkPolicy
	for i := range list.Items {
		out = append(out, cluster.ClusterNetworkPolicyFromAPI(&list.Items[i]))
	}
	return out, nil
}
