package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

const (
	smokeNode = "node-a"
	smokeNS   = "smoke"
	smokePod  = "web"
	smokePol  = "web-ingress"
	smokeIP   = "10.244.1.10"
)

// TestControlPlaneAndAgentRole starts the real control plane, creates the
// objects the agent reads as a kubelet-less cluster would hold them, and
// checks with the agent's own ServiceAccount token that deploy/rbac.yaml
// grants every read and event write the agent needs and nothing else. Then
// it restarts the API server and checks that objects and token survive.
func TestControlPlaneAndAgentRole(t *testing.T) {
	cp := framework.Start(t)
	seedObjects(t, cp)

	agent, _ := cp.ClientForKubeconfig(t, cp.AgentKubeconfig(t))
	t.Run("allowed", func(t *testing.T) { checkAllowed(t, cp, agent) })
	t.Run("forbidden", func(t *testing.T) { checkForbidden(t, agent) })
	t.Run("restart", func(t *testing.T) { checkRestart(t, cp, agent) })
}

func seedObjects(t *testing.T, cp *framework.ControlPlane) {
	t.Helper()
	node := cp.CreateNode(t, smokeNode, []string{"10.244.1.0/24"}, "10.0.0.11")
	if got := node.Status.Addresses[0]; got.Type != corev1.NodeInternalIP || got.Address != "10.0.0.11" {
		t.Fatalf("Node %s status address = %+v, want InternalIP 10.0.0.11", smokeNode, got)
	}
	cp.CreateNamespace(t, smokeNS, map[string]string{"team": "a"})
	cp.CreatePod(t, framework.Pod(smokeNS, smokePod, smokeNode, map[string]string{"app": "web"},
		corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}))
	pod := cp.SetPodRunning(t, smokeNS, smokePod, smokeIP)
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != smokeIP {
		t.Fatalf("Pod %s/%s status = %s %q, want Running %s", smokeNS, smokePod, pod.Status.Phase, pod.Status.PodIP, smokeIP)
	}
	port := intstr.FromString("http")
	pol := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: smokeNS, Name: smokePol},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}},
		},
	}
	if _, err := cp.Admin.NetworkingV1().NetworkPolicies(smokeNS).Create(t.Context(), pol, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create NetworkPolicy %s/%s: %v", smokeNS, smokePol, err)
	}
}

// checkAllowed makes each request the agent needs, as the agent.
func checkAllowed(t *testing.T, cp *framework.ControlPlane, agent kubernetes.Interface) {
	all := metav1.ListOptions{}
	get := metav1.GetOptions{}
	cases := []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"list pods in all namespaces", func(ctx context.Context) error { _, err := agent.CoreV1().Pods("").List(ctx, all); return err }},
		{"get pod", func(ctx context.Context) error {
			_, err := agent.CoreV1().Pods(smokeNS).Get(ctx, smokePod, get)
			return err
		}},
		{"list namespaces", func(ctx context.Context) error { _, err := agent.CoreV1().Namespaces().List(ctx, all); return err }},
		{"get namespace", func(ctx context.Context) error {
			_, err := agent.CoreV1().Namespaces().Get(ctx, smokeNS, get)
			return err
		}},
		{"list nodes", func(ctx context.Context) error { _, err := agent.CoreV1().Nodes().List(ctx, all); return err }},
		{"get node", func(ctx context.Context) error { _, err := agent.CoreV1().Nodes().Get(ctx, smokeNode, get); return err }},
		{"list networkpolicies in all namespaces", func(ctx context.Context) error {
			_, err := agent.NetworkingV1().NetworkPolicies("").List(ctx, all)
			return err
		}},
		{"get networkpolicy", func(ctx context.Context) error {
			_, err := agent.NetworkingV1().NetworkPolicies(smokeNS).Get(ctx, smokePol, get)
			return err
		}},
		{"watch namespaces", openWatch(agent.CoreV1().Namespaces().Watch)},
		{"watch nodes", openWatch(agent.CoreV1().Nodes().Watch)},
		{"watch networkpolicies", openWatch(agent.NetworkingV1().NetworkPolicies("").Watch)},
		{"create and patch a core event", func(ctx context.Context) error { return coreEvent(ctx, agent) }},
		{"create and patch an events.k8s.io event", func(ctx context.Context) error { return eventsV1Event(ctx, agent) }},
	}
	for _, c := range cases {
		if err := c.do(t.Context()); err != nil {
			t.Errorf("as %s: %s: %v", framework.AgentServiceAccount, c.name, err)
		}
	}
	checkPodWatch(t, cp, agent)
	checkInformers(t, agent)
}

func openWatch(w func(context.Context, metav1.ListOptions) (watch.Interface, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		wi, err := w(ctx, metav1.ListOptions{})
		if err == nil {
			wi.Stop()
		}
		return err
	}
}

// checkPodWatch proves a watch delivers a change, the way an informer learns
// of a relabelled pod.
func checkPodWatch(t *testing.T, cp *framework.ControlPlane, agent kubernetes.Interface) {
	ctx := t.Context()
	list, err := agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	w, err := agent.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatalf("as %s: watch pods: %v", framework.AgentServiceAccount, err)
	}
	defer w.Stop()
	patch := []byte(`{"metadata":{"labels":{"app":"web","tier":"front"}}}`)
	if _, err := cp.Admin.CoreV1().Pods(smokeNS).Patch(ctx, smokePod, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("relabel pod: %v", err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("pod watch closed before the relabel arrived")
			}
			if pod, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type == watch.Modified && pod.Labels["tier"] == "front" {
				return
			}
		case <-timeout:
			t.Fatal("pod watch did not deliver the relabel within 10s")
		}
	}
}

// checkInformers starts shared informers for everything the agent reads, the
// way the agent does, and waits for them to sync with the role's rights.
func checkInformers(t *testing.T, agent kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	factory := informers.NewSharedInformerFactory(agent, 0)
	pods := factory.Core().V1().Pods().Lister()
	factory.Core().V1().Namespaces().Informer()
	factory.Core().V1().Nodes().Informer()
	factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer cancel() // runs before Shutdown, which waits for the informers
	for typ, synced := range factory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			t.Errorf("as %s: informer for %v did not sync", framework.AgentServiceAccount, typ)
		}
	}
	if _, err := pods.Pods(smokeNS).Get(smokePod); err != nil {
		t.Errorf("pod informer cache: %v", err)
	}
}

func coreEvent(ctx context.Context, cs kubernetes.Interface) error {
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: smokeNS, Name: "smoke.core"},
		InvolvedObject: corev1.ObjectReference{Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1", Namespace: smokeNS, Name: smokePol},
		Type:           corev1.EventTypeWarning, Reason: "SmokeTest", Message: "core event from the agent's role",
		Source: corev1.EventSource{Component: "kube-fence"}, Count: 1,
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
	}
	if _, err := cs.CoreV1().Events(smokeNS).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := cs.CoreV1().Events(smokeNS).Patch(ctx, ev.Name, types.StrategicMergePatchType, []byte(`{"count":2}`), metav1.PatchOptions{})
	return err
}

func eventsV1Event(ctx context.Context, cs kubernetes.Interface) error {
	ev := &eventsv1.Event{
		// Events about cluster-scoped objects live in "default", as client-go's
		// events recorder puts them.
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "smoke.events"},
		EventTime:  metav1.NowMicro(), ReportingController: "kube-fence.io/agent", ReportingInstance: "kube-fence-" + smokeNode,
		Action: "Apply", Reason: "SmokeTest", Type: corev1.EventTypeNormal, Note: "events.k8s.io event from the agent's role",
		Regarding: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: smokeNode},
	}
	if _, err := cs.EventsV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"series":{"count":2,"lastObservedTime":%q}}`, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	_, err := cs.EventsV1().Events(ev.Namespace).Patch(ctx, ev.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// checkForbidden makes requests the agent must not be able to make. Each
// must fail with 403, so a widened ClusterRole fails here.
func checkForbidden(t *testing.T, agent kubernetes.Interface) {
	all := metav1.ListOptions{}
	get := metav1.GetOptions{}
	now := metav1.DeleteOptions{GracePeriodSeconds: new(int64)}
	cases := []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"create a pod", func(ctx context.Context) error {
			_, err := agent.CoreV1().Pods(smokeNS).Create(ctx, framework.Pod(smokeNS, "intruder", smokeNode, nil), metav1.CreateOptions{})
			return err
		}},
		{"delete a pod", func(ctx context.Context) error { return agent.CoreV1().Pods(smokeNS).Delete(ctx, smokePod, now) }},
		{"relabel a pod", func(ctx context.Context) error {
			_, err := agent.CoreV1().Pods(smokeNS).Patch(ctx, smokePod, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"update a pod's status", func(ctx context.Context) error {
			_, err := agent.CoreV1().Pods(smokeNS).Patch(ctx, smokePod, types.MergePatchType, []byte(`{"status":{"phase":"Failed"}}`), metav1.PatchOptions{}, "status")
			return err
		}},
		{"create a networkpolicy", func(ctx context.Context) error {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: smokeNS, Name: "allow-all"}}
			_, err := agent.NetworkingV1().NetworkPolicies(smokeNS).Create(ctx, np, metav1.CreateOptions{})
			return err
		}},
		{"delete a networkpolicy", func(ctx context.Context) error {
			return agent.NetworkingV1().NetworkPolicies(smokeNS).Delete(ctx, smokePol, now)
		}},
		{"patch a node's status", func(ctx context.Context) error {
			_, err := agent.CoreV1().Nodes().Patch(ctx, smokeNode, types.MergePatchType, []byte(`{"status":{"phase":"x"}}`), metav1.PatchOptions{}, "status")
			return err
		}},
		{"create a namespace", func(ctx context.Context) error {
			_, err := agent.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{})
			return err
		}},
		{"list secrets", func(ctx context.Context) error { _, err := agent.CoreV1().Secrets("").List(ctx, all); return err }},
		{"get a secret", func(ctx context.Context) error {
			_, err := agent.CoreV1().Secrets("kube-system").Get(ctx, "any", get)
			return err
		}},
		{"list configmaps", func(ctx context.Context) error { _, err := agent.CoreV1().ConfigMaps("").List(ctx, all); return err }},
		{"list services", func(ctx context.Context) error { _, err := agent.CoreV1().Services("").List(ctx, all); return err }},
		{"list serviceaccounts", func(ctx context.Context) error {
			_, err := agent.CoreV1().ServiceAccounts("").List(ctx, all)
			return err
		}},
		{"list events", func(ctx context.Context) error { _, err := agent.CoreV1().Events("").List(ctx, all); return err }},
		{"delete an event", func(ctx context.Context) error { return agent.CoreV1().Events(smokeNS).Delete(ctx, "smoke.core", now) }},
		{"list clusterroles", func(ctx context.Context) error { _, err := agent.RbacV1().ClusterRoles().List(ctx, all); return err }},
	}
	for _, c := range cases {
		err := c.do(t.Context())
		if !apierrors.IsForbidden(err) {
			t.Errorf("as %s: %s: got %v, want 403 Forbidden (the ClusterRole is wider than the agent needs)", framework.AgentServiceAccount, c.name, err)
		}
	}
}

// checkRestart stops the API server, checks the agent's client notices, and
// starts it again: etcd kept the objects and the same signing key keeps the
// token valid.
func checkRestart(t *testing.T, cp *framework.ControlPlane, agent kubernetes.Interface) {
	ctx := t.Context()
	before, err := agent.CoreV1().Pods(smokeNS).Get(ctx, smokePod, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod before restart: %v", err)
	}
	begin := time.Now()
	cp.StopAPIServer(t)
	stopped := time.Since(begin)
	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = agent.CoreV1().Pods(smokeNS).Get(down, smokePod, metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("get pod succeeded with the API server stopped")
	}
	if apierrors.IsForbidden(err) || errors.Is(err, context.Canceled) {
		t.Fatalf("get pod with the API server stopped: %v, want a connection error", err)
	}
	begin = time.Now()
	cp.StartAPIServer(t)
	t.Logf("API server stopped in %v, started again in %v", stopped.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	after, err := agent.CoreV1().Pods(smokeNS).Get(ctx, smokePod, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod after restart with the same token: %v", err)
	}
	if after.UID != before.UID || after.Status.PodIP != smokeIP || after.Status.Phase != corev1.PodRunning {
		t.Errorf("pod after restart = uid %s %s %q, want uid %s Running %s", after.UID, after.Status.Phase, after.Status.PodIP, before.UID, smokeIP)
	}
	if _, err := agent.NetworkingV1().NetworkPolicies(smokeNS).Get(ctx, smokePol, metav1.GetOptions{}); err != nil {
		t.Errorf("get networkpolicy after restart: %v", err)
	}
}
