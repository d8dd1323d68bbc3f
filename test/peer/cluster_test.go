//go:build peer

package peer

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// testCluster is the synthetic cluster in the API server, and what the
// measurements add to it.
type testCluster struct {
	cp     *framework.ControlPlane
	client *kubernetes.Clientset
	s      *cluster.Snapshot
	node   string
	// hostIPs are each node's InternalIP, which pods' status.hostIP says:
	// kube-router finds its node's pods by it.
	hostIPs map[string]string
	// localPods are the pods on the measured node both controllers
	// enforce: running, not host network, with an IPv4 address.
	localPods int
	// namespace holds local pods; the measured policies and pods go there.
	namespace string
}

func newCluster(t *testing.T, cp *framework.ControlPlane, s *cluster.Snapshot) *testCluster {
	cfg := rest.CopyConfig(cp.AdminConfig)
	cfg.QPS, cfg.Burst = 2000, 4000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{cp: cp, client: client, s: s, node: s.Nodes[0].Name, hostIPs: map[string]string{}}
	for _, n := range s.Nodes {
		c.hostIPs[n.Name] = n.Addresses[0].String()
	}
	for _, p := range s.Pods {
		if p.NodeName == c.node && p.Enforceable() && !p.HostNetwork && len(p.IPs) > 0 && p.IPs[0].Is4() {
			c.localPods++
			if c.namespace == "" {
				c.namespace = p.Namespace
			}
		}
	}
	if c.namespace == "" {
		t.Fatalf("the synthetic cluster has no enforceable pod on %s", c.node)
	}
	return c
}

// create puts the snapshot in the API server: the measured node, the
// namespaces, policies and pods (with the status a kubelet would set).
func (c *testCluster) create(t *testing.T) {
	ctx := t.Context()
	n := c.s.Nodes[0]
	var cidrs, addrs []string
	for _, p := range n.PodCIDRs {
		cidrs = append(cidrs, p.String())
	}
	for _, a := range n.Addresses {
		addrs = append(addrs, a.String())
	}
	c.cp.CreateNode(t, n.Name, cidrs, addrs...)
	for _, ns := range c.s.Namespaces {
		labels := map[string]string{}
		for k, v := range ns.Labels {
			if k != corev1.LabelMetadataName {
				labels[k] = v
			}
		}
		c.cp.CreateNamespace(t, ns.Name, labels)
	}
	framework.Parallel(t, len(c.s.Policies), func(i int) error {
		_, err := c.client.NetworkingV1().NetworkPolicies(c.s.Policies[i].Namespace).Create(ctx, c.s.Policies[i], metav1.CreateOptions{})
		return err
	})
	framework.Parallel(t, len(c.s.Pods), func(i int) error { return c.createPod(ctx, c.s.Pods[i]) })
}

func (c *testCluster) createPod(ctx context.Context, p *cluster.Pod) error {
	var ports []corev1.ContainerPort
	for _, cp := range p.Ports {
		ports = append(ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.Port, Protocol: cp.Protocol})
	}
	pod := framework.Pod(p.Namespace, p.Name, p.NodeName, p.Labels, ports...)
	pod.Spec.HostNetwork = p.HostNetwork
	created, err := c.client.CoreV1().Pods(p.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s: %w", p.Key(), err)
	}
	created.Status.Phase = p.Phase
	created.Status.HostIP = c.hostIPs[p.NodeName]
	if created.Status.HostIP != "" {
		created.Status.HostIPs = []corev1.HostIP{{IP: created.Status.HostIP}}
	}
	for _, ip := range p.IPs {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(p.IPs) > 0 {
		created.Status.PodIP = p.IPs[0].String()
	}
	if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of pod %s: %w", p.Key(), err)
	}
	return nil
}

// newPod is a running pod on the measured node in the measured namespace,
// with an address no pod of the snapshot has (10.255.250.0/24).
func (c *testCluster) newPod(name string, host byte) *cluster.Pod {
	return &cluster.Pod{Namespace: c.namespace, Name: name, NodeName: c.node, Phase: corev1.PodRunning,
		Labels: map[string]string{"peer-bench": "pod"},
		IPs:    []netip.Addr{netip.AddrFrom4([4]byte{10, 255, 250, host})}}
}

// newPolicy selects every pod of the measured namespace and admits TCP 8080
// from the namespace's pods: a change both controllers must enforce on each
// local pod there.
func (c *testCluster) newPolicy(name string) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(8080)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}
