package framework

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// PauseImage is the image test pods name. No kubelet runs, so it is never
// pulled; it only has to be a valid reference.
const PauseImage = "registry.k8s.io/pause:3.10"

// CreateNode creates a Node with the given pod CIDRs (spec.podCIDRs, one per
// IP family) and sets its status as a kubelet would: the addresses (the
// first is the InternalIP) and a Ready condition. Status is a subresource,
// so it takes a second call.
func (cp *ControlPlane) CreateNode(t testing.TB, name string, podCIDRs []string, addresses ...string) *corev1.Node {
	t.Helper()
	ctx := t.Context()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Spec:       corev1.NodeSpec{PodCIDRs: podCIDRs},
	}
	if len(podCIDRs) > 0 {
		node.Spec.PodCIDR = podCIDRs[0]
	}
	created, err := cp.Admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Node %s: %v", name, err)
	}
	now := metav1.Now()
	for i, a := range addresses {
		typ := corev1.NodeInternalIP
		if i > 0 {
			typ = corev1.NodeExternalIP
		}
		created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: typ, Address: a})
	}
	created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	created.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "set by the e2e framework", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	updated, err := cp.Admin.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set status of Node %s: %v", name, err)
	}
	return updated
}

// CreateNamespace creates a Namespace with labels. The API server adds the
// kubernetes.io/metadata.name label itself.
func (cp *ControlPlane) CreateNamespace(t testing.TB, name string, labels map[string]string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	created, err := cp.Admin.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Namespace %s: %v", name, err)
	}
	return created
}

// DeleteNamespace deletes a Namespace and everything the tests put in it
// (Pods, NetworkPolicies, Events), then finalizes it. Without a
// controller-manager a deleted namespace would stay Terminating for ever.
func (cp *ControlPlane) DeleteNamespace(t testing.TB, name string) {
	t.Helper()
	ctx := t.Context()
	now := metav1.DeleteOptions{GracePeriodSeconds: new(int64)}
	all := metav1.ListOptions{}
	if err := cp.Admin.CoreV1().Pods(name).DeleteCollection(ctx, now, all); err != nil {
		t.Fatalf("delete Pods in Namespace %s: %v", name, err)
	}
	if err := cp.Admin.NetworkingV1().NetworkPolicies(name).DeleteCollection(ctx, now, all); err != nil {
		t.Fatalf("delete NetworkPolicies in Namespace %s: %v", name, err)
	}
	if err := cp.Admin.CoreV1().Events(name).DeleteCollection(ctx, now, all); err != nil {
		t.Fatalf("delete Events in Namespace %s: %v", name, err)
	}
	if err := cp.Admin.CoreV1().Namespaces().Delete(ctx, name, now); err != nil {
		t.Fatalf("delete Namespace %s: %v", name, err)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := cp.Admin.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		ns.Spec.Finalizers = nil
		_, err = cp.Admin.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("finalize Namespace %s: %v", name, err)
	}
}

// Pod returns a pod bound to nodeName (no scheduler runs, so it must be set
// at creation) with one container exposing ports. It is not created.
func Pod(namespace, name, nodeName string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: new(int64),
			AutomountServiceAccountToken:  new(bool),
			Containers:                    []corev1.Container{{Name: "c", Image: PauseImage, Ports: ports}},
		},
	}
}

// CreatePod creates pod. It stays Pending with no IP until SetPodRunning.
func (cp *ControlPlane) CreatePod(t testing.TB, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if pod.Spec.NodeName == "" {
		t.Fatalf("create Pod %s/%s: spec.nodeName is empty, and no scheduler runs to set it", pod.Namespace, pod.Name)
	}
	created, err := cp.Admin.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return created
}

// SetPodRunning does a kubelet's part: phase Running, Ready, and the pod's
// IPs (status.podIP is the first, status.podIPs all, one per family).
func (cp *ControlPlane) SetPodRunning(t testing.TB, namespace, name string, ips ...string) *corev1.Pod {
	t.Helper()
	pod, err := cp.UpdatePodStatus(t.Context(), namespace, name, func(s *corev1.PodStatus) {
		now := metav1.Now()
		s.Phase = corev1.PodRunning
		s.PodIPs = nil
		for _, ip := range ips {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
		}
		s.PodIP = ""
		if len(ips) > 0 {
			s.PodIP = ips[0]
		}
		if s.StartTime == nil {
			s.StartTime = &now
		}
		s.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// SetPodPhase sets only the phase, for pods that finish (Succeeded, Failed)
// and whose IPs a kubelet would then release.
func (cp *ControlPlane) SetPodPhase(t testing.TB, namespace, name string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	pod, err := cp.UpdatePodStatus(t.Context(), namespace, name, func(s *corev1.PodStatus) { s.Phase = phase })
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// UpdatePodStatus applies mutate to the pod's status through the status
// subresource, retrying on conflicts.
func (cp *ControlPlane) UpdatePodStatus(ctx context.Context, namespace, name string, mutate func(*corev1.PodStatus)) (*corev1.Pod, error) {
	var out *corev1.Pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := cp.Admin.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(&pod.Status)
		out, err = cp.Admin.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update status of Pod %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// DeletePod deletes a pod at once. A pod bound to a node is otherwise only
// marked for deletion until its kubelet confirms, and no kubelet runs here.
func (cp *ControlPlane) DeletePod(t testing.TB, namespace, name string) {
	t.Helper()
	err := cp.Admin.CoreV1().Pods(namespace).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil {
		t.Fatalf("delete Pod %s/%s: %v", namespace, name, err)
	}
}

// WaitFor polls cond every 50ms until it returns true, and fails the test
// naming what (and cond's last error) when timeout passes first. For bounds an e2e test
// states ("reaches the kernel within 2s"), not for benchmarks.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not true within %v (last error: %v)", what, timeout, last)
		case <-tick.C:
		}
	}
}
