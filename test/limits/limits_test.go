package limits

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

var (
	manyPolicies = flag.Int("limits.policies", 1000, "policies selecting one pod")
	bigPorts     = flag.Int("limits.ports", 300, "ports of the one large policy's rule (the API allows thousands)")
	bigPeers     = flag.Int("limits.peers", 300, "ipBlock peers of the one large policy's rule")
	overPorts    = flag.Int("limits.over-ports", 600, "separate ports of the rule with 2,000 peers (its port classes share one set of the peers)")
	hostileRules = flag.Int("limits.hostile-rules", 1500, "rules of the policy over the budget (it needs rules×(rules+1)/2 address ranges)")
	cpuProfile   = flag.String("limits.cpuprofile", "", "run the agent with --profiling and write its CPU profile during the 1,000 policies to this file")
	caseBound    = flag.Duration("limits.bound", 5*time.Minute, "how long one case may take to reach the kernel")
)

const nodeName = "node-1"

// otherIP is the pod whose label the stall probe flips.
var otherIP = netip.MustParseAddr("10.42.1.10")

type env struct {
	t      *testing.T
	cp     *framework.ControlPlane
	api    *kubernetes.Clientset
	agent  *framework.Agent
	reader *kernel.Conn
	flip   bool
}

// TestObjectsAtTheLimits: each case's objects go through the API server;
// the kernel must then hold exactly the table they require (or the API
// server refuses them), the agent stays up and ready, and a relabel of an
// unrelated pod, repeated while the case is processed, says how long the
// writer loop stalled.
func TestObjectsAtTheLimits(t *testing.T) {
	e := newEnv(t)
	base := e.stallDuring("baseline", func() {})
	t.Logf("baseline: a relabel reaches the kernel in %v", base)
	for _, c := range []struct {
		name string
		run  func(*env)
	}{
		{fmt.Sprintf("%d policies selecting one pod", *manyPolicies), (*env).manyPolicies},
		{fmt.Sprintf("one rule with %d ports and %d peers", *bigPorts, *bigPeers), (*env).bigPolicy},
		{"names and label sets at their maximum", (*env).maxNames},
		{"a pod status with dozens of addresses", (*env).manyIPs},
		{fmt.Sprintf("one rule with %d separate ports and 2,000 peers", *overPorts), (*env).widePolicy},
		{"a policy over the budget, then an unrelated one", (*env).overBudget},
	} {
		ok := t.Run(c.name, func(t *testing.T) {
			parent := e.t
			e.t = t
			defer func() { e.t = parent }()
			var took time.Duration
			syncs, syncTime := e.syncs()
			stall := e.stallDuring(c.name, func() {
				start := time.Now()
				c.run(e)
				took = e.waitTable(c.name, start)
			})
			n, sum := e.syncs()
			t.Logf("%s: objects written to kernel in %v; an unrelated relabel took at most %v (baseline %v); the agent synced %v times meanwhile, %v each on average",
				c.name, took, stall, base, n-syncs, (time.Duration((sum - syncTime) / max(1, n-syncs) * float64(time.Second))).Round(time.Millisecond))
			e.healthy()
		})
		if !ok {
			return
		}
	}
}

func newEnv(t *testing.T) *env {
	cp := framework.Start(t)
	cfg := rest.CopyConfig(cp.AdminConfig)
	cfg.QPS, cfg.Burst = 2000, 4000
	api, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cp: cp, api: api}
	cp.CreateNode(t, nodeName, []string{"10.42.0.0/16", "fd00:10:42::/64"}, "192.168.100.1")
	for _, ns := range []string{"x", "y"} {
		cp.CreateNamespace(t, ns, map[string]string{"ns": ns})
	}
	e.pod("x", "target", map[string]string{"app": "target"}, "10.42.0.10")
	framework.Parallel(t, 50, func(i int) error {
		e.pod("x", fmt.Sprintf("client-%d", i), map[string]string{"client": fmt.Sprint(i)}, fmt.Sprintf("10.42.0.%d", 100+i))
		return nil
	})
	e.pod("y", "other", map[string]string{"role": "b"}, otherIP.String())
	iso := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "isolate-role-a"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "a"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	if _, err := api.NetworkingV1().NetworkPolicies("y").Create(t.Context(), iso, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := framework.AgentOptionsFromDaemonSet(t, framework.AgentDaemonSet(t), nodeName)
	opts.Kubeconfig, opts.HealthAddr, opts.MetricsAddr = cp.AgentKubeconfig(t), "127.0.0.1:9943", "127.0.0.1:9942"
	if *cpuProfile != "" {
		opts.Extra = append(opts.Extra, "--profiling")
	}
	e.agent = cp.StartAgent(t, opts)
	e.agent.WaitReady(t, time.Minute)
	if e.reader, err = kernel.Open(kernel.Options{NetNSFD: cp.NS.FD(), Ownership: kernel.OwnershipOff}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.reader.Close() })
	e.waitTable("initial objects", time.Now())
	return e
}

// pod creates a running pod with the given addresses, as a kubelet would.
func (e *env) pod(ns, name string, labels map[string]string, ips ...string) error {
	e.cp.CreatePod(e.t, framework.Pod(ns, name, nodeName, labels, corev1.ContainerPort{Name: "http", ContainerPort: 80}))
	e.cp.SetPodRunning(e.t, ns, name, ips...)
	return nil
}

// snapshot lists what the agent watches, converted as the agent does.
func (e *env) snapshot() *cluster.Snapshot {
	ctx, all := e.t.Context(), metav1.ListOptions{}
	s := &cluster.Snapshot{}
	nss, err := e.api.CoreV1().Namespaces().List(ctx, all)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range nss.Items {
		s.Namespaces = append(s.Namespaces, cluster.NamespaceFromAPI(&nss.Items[i]))
	}
	pods, err := e.api.CoreV1().Pods("").List(ctx, all)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range pods.Items {
		if p, err := cluster.PodFromAPI(&pods.Items[i]); err == nil {
			s.Pods = append(s.Pods, p)
		}
	}
	pols, err := e.api.NetworkingV1().NetworkPolicies("").List(ctx, all)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range pols.Items {
		s.Policies = append(s.Policies, &pols.Items[i])
	}
	node, err := e.api.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := cluster.NodeFromAPI(node)
	if err != nil {
		e.t.Fatal(err)
	}
	s.Nodes = []*cluster.Node{n}
	return s
}

// waitTable waits until the kernel holds exactly the table the API objects
// require, and returns the time since start.
func (e *env) waitTable(what string, start time.Time) time.Duration {
	e.t.Helper()
	_, want := enforce.Preview(e.snapshot(), nodeName, policy.Options{DefaultDenyUnknown: true}, nft.DropLog{})
	var diff []string
	for time.Since(start) < *caseBound {
		have, err := e.reader.Read()
		if err == nil {
			d := nft.Diff(want, have)
			if d.Empty() {
				return time.Since(start)
			}
			diff = d.Differences
		}
		if _, body, err := e.agent.Get(e.t.Context(), "/readyz"); err == nil && strings.Contains(body, "degraded") {
			e.t.Logf("%s: agent %s", what, strings.TrimSpace(body))
		}
		time.Sleep(250 * time.Millisecond)
	}
	e.t.Fatalf("%s: the kernel does not hold the required table within %v; %d differences, first: %s",
		what, *caseBound, len(diff), strings.Join(diff[:min(5, len(diff))], "; "))
	return 0
}

// stallDuring runs f while relabelling y/other back and forth, each time
// waiting for its element in ingress-pods-v4 to change, and returns the
// longest of those waits: how long the writer loop kept a small change
// waiting while it processed what f wrote.
func (e *env) stallDuring(what string, f func()) time.Duration {
	e.t.Helper()
	done := make(chan struct{})
	var worst time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			d, err := e.relabelOther()
			mu.Lock()
			if err != nil {
				e.t.Errorf("%s: stall probe: %v", what, err)
			}
			worst = max(worst, d)
			mu.Unlock()
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return worst
}

// relabelOther flips y/other between role a (isolated) and b and waits for
// its ingress map element to follow.
func (e *env) relabelOther() (time.Duration, error) {
	e.flip = !e.flip
	role, isolated := "b", false
	if e.flip {
		role, isolated = "a", true
	}
	start := time.Now()
	patch := fmt.Sprintf(`{"metadata":{"labels":{"role":%q}}}`, role)
	if _, err := e.api.CoreV1().Pods("y").Patch(e.t.Context(), "other", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return 0, err
	}
	for time.Since(start) < *caseBound {
		// One small map, read with nft (a test may): a full read back of a
		// large table would itself load the machine it measures.
		out, err := e.cp.NS.Command("nft", "list", "map", "inet", "kube-fence", "ingress-pods-v4")
		if i := strings.Index(string(out), otherIP.String()+" "); err == nil && i >= 0 {
			elem := string(out[i:])
			if j := strings.IndexAny(elem, ",}"); j >= 0 {
				elem = elem[:j]
			}
			if strings.Contains(elem, "goto") == isolated {
				return time.Since(start), nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("relabel of y/other to role=%s not in the kernel within %v", role, *caseBound)
}

// healthy fails unless the agent runs and is ready.
func (e *env) healthy() {
	e.t.Helper()
	select {
	case <-e.agent.Exited():
		e.t.Fatalf("the agent exited: %v\n%s", e.agent.ExitError(), e.agent.Tail(30))
	default:
	}
	code, body, err := e.agent.Get(e.t.Context(), "/readyz")
	if err != nil || code != http.StatusOK {
		e.t.Errorf("agent not ready: %d %s %v", code, body, err)
	}
}

// manyPolicies: each policy selects x/target and allows one client on one
// port.
func (e *env) manyPolicies() {
	if *cpuProfile != "" {
		done := e.profile(*cpuProfile)
		defer func() { <-done }()
	}
	framework.Parallel(e.t, *manyPolicies, func(i int) error {
		port := intstr.FromInt32(int32(1000 + i))
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: fmt.Sprintf("many-%d", i)},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "target"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"client": fmt.Sprint(i % 50)}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
				}}}}
		_, err := e.api.NetworkingV1().NetworkPolicies("x").Create(e.t.Context(), np, metav1.CreateOptions{})
		return err
	})
}

// bigPolicy: one rule with many ports and many ipBlock peers (with an
// except each).
func (e *env) bigPolicy() {
	rule := networkingv1.NetworkPolicyIngressRule{}
	for i := range *bigPorts {
		p := intstr.FromInt32(int32(2000 + 2*i)) // apart: no range merges them
		rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Port: &p})
	}
	for i := range *bigPeers {
		a, b := 11+i/256, i%256
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{
			CIDR: fmt.Sprintf("%d.%d.0.0/24", a, b), Except: []string{fmt.Sprintf("%d.%d.0.128/25", a, b)}}})
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "big"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"client": "7"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{rule}}}
	if _, err := e.api.NetworkingV1().NetworkPolicies("x").Create(e.t.Context(), np, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create the large policy: %v", err)
	}
}

// maxNames: a namespace name of 63 characters, pod and policy names of
// 253, 60 labels with keys of 253+1+63 characters and values of 63, and
// selectors of 60 expressions with 20 values each.
func (e *env) maxNames() {
	long := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	// A DNS subdomain of 253 characters: labels of at most 63.
	subdomain := func(tag string) string {
		return long('a', 63) + "." + long('b', 63) + "." + long('c', 63) + "." + tag + long('d', 61-len(tag))
	}
	ns := long('n', 63)
	labels := map[string]string{}
	var exprs []metav1.LabelSelectorRequirement
	for i := range 60 {
		key := subdomain(fmt.Sprintf("%02d", i)) + "/" + long('l', 63)
		labels[key] = fmt.Sprintf("%02d%s", i, long('v', 61))
		var values []string
		for j := range 20 {
			values = append(values, fmt.Sprintf("%02d%s", (i+j)%60, long('v', 61)))
		}
		exprs = append(exprs, metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpIn, Values: values})
	}
	e.cp.CreateNamespace(e.t, ns, labels)
	pod := subdomain("pod")
	e.cp.CreatePod(e.t, framework.Pod(ns, pod, nodeName, labels, corev1.ContainerPort{Name: long('h', 15), ContainerPort: 80}))
	e.cp.SetPodRunning(e.t, ns, pod, "10.42.2.10", "fd00:10:42::2:10")
	port := intstr.FromString(long('h', 15))
	sel := &metav1.LabelSelector{MatchExpressions: exprs}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: subdomain("policy")},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel, PodSelector: sel}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}}}}
	if _, err := e.api.NetworkingV1().NetworkPolicies(ns).Create(e.t.Context(), np, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create the policy of maximal names: %v", err)
	}
}

// manyIPs: the API server refuses a pod status with more than one address
// per family, so such a pod never reaches the agent; the table stays as
// it was.
func (e *env) manyIPs() {
	e.cp.CreatePod(e.t, framework.Pod("x", "many-ips", nodeName, nil))
	_, err := e.cp.UpdatePodStatus(e.t.Context(), "x", "many-ips", func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		for i := range 24 {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: fmt.Sprintf("10.42.3.%d", i+1)}, corev1.PodIP{IP: fmt.Sprintf("fd00:10:42::3:%x", i+1)})
		}
		s.PodIP = s.PodIPs[0].IP
	})
	if !apierrors.IsInvalid(err) {
		e.t.Fatalf("a pod status with 48 addresses: the API server answered %v, want Invalid", err)
	}
	e.t.Logf("the API server refuses 48 addresses: %v", trimmed(err))
}

func trimmed(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// widePolicy: one rule of many separate ports and 2,000 peers, which the API
// server accepts. Before port classes with equal peers shared their sets it
// needed a set of the 2,000 peers per port (1.2 million elements at 600
// ports; at 2,001 ports the kernel exhausted a 24 GiB machine's memory) and
// was refused by the pipeline's budget; now its peers are one set, and it
// is enforced like any other. The budget's refusal of a plan whose sets
// are really that large is overBudget's.
func (e *env) widePolicy() {
	rule := networkingv1.NetworkPolicyIngressRule{}
	for i := range *overPorts {
		p := intstr.FromInt32(int32(2000 + 2*i))
		rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Port: &p})
	}
	for i := range 2000 {
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("%d.%d.0.0/24", 11+i/256, i%256)}})
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "wide"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"client": "9"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{rule}}}
	if _, err := e.api.NetworkingV1().NetworkPolicies("x").Create(e.t.Context(), np, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create the policy of %d ports and 2,000 peers: %v", *overPorts, err)
	}
}

// overBudget: a policy whose rules need more address ranges than the
// node's budget (enforce.MaxPeerRanges): rule i allows ports 3000+i up to
// 3000+n from a /24 of its own, so each port class holds the peers of the
// rules before it, a set of its own: n(n+1)/2 ranges, 1.1 million at 1,500
// rules, in a 200 kB object. The agent refuses only that policy's part (its
// pod stays isolated and allows nothing) with a Warning event on it, and a
// policy created after it is enforced. waitTable checks the kernel against
// the pipeline's own Preview, which applies the same budget; the checks
// here say what that table is.
func (e *env) overBudget() {
	n := *hostileRules
	if n*(n+1)/2 <= enforce.MaxPeerRanges {
		e.t.Fatalf("-limits.hostile-rules=%d needs %d ranges, within the budget of %d", n, n*(n+1)/2, enforce.MaxPeerRanges)
	}
	end := int32(3000 + n)
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "over-budget"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"client": "3"}}}}
	for i := range n {
		port := intstr.FromInt32(int32(3000 + i))
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{{Port: &port, EndPort: &end}},
			From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("%d.%d.0.0/24", 11+i/128, 2*(i%128))}}},
		})
	}
	created, err := e.api.NetworkingV1().NetworkPolicies("x").Create(e.t.Context(), np, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("create the policy over the budget: %v", err)
	}
	start := time.Now()
	var ev corev1.Event
	framework.WaitFor(e.t, *caseBound, "a Warning event on x/over-budget", func(ctx context.Context) (bool, error) {
		sel := fields.Set{"involvedObject.kind": "NetworkPolicy", "involvedObject.name": np.Name, "reason": agent.ReasonPolicyProblem}
		evs, err := e.api.CoreV1().Events("x").List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
		if err != nil || len(evs.Items) == 0 {
			return false, err
		}
		ev = evs.Items[0]
		return true, nil
	})
	e.t.Logf("event %s %s on x/over-budget after %v: %s", ev.Type, ev.Reason, time.Since(start).Round(time.Millisecond), trimmed(fmt.Errorf("%s", ev.Message)))
	if ev.Type != corev1.EventTypeWarning || ev.InvolvedObject.UID != created.UID || !strings.Contains(ev.Message, "budget of 1000000") {
		e.t.Errorf("event %s %+v %q: want a Warning on x/over-budget naming the budget", ev.Type, ev.InvolvedObject, ev.Message)
	}
	e.waitTable("the policy over the budget", start)

	// Created after it: x/client-4 accepts x/client-5 on port 80.
	port := intstr.FromInt32(80)
	after := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "after-over-budget"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"client": "4"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"client": "5"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}}}}
	if _, err := e.api.NetworkingV1().NetworkPolicies("x").Create(e.t.Context(), after, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create the policy after the one over the budget: %v", err)
	}
	e.t.Logf("the policy created after it reached the kernel in %v", e.waitTable("the policy after the one over the budget", time.Now()))

	pl, table := enforce.Preview(e.snapshot(), nodeName, policy.Options{DefaultDenyUnknown: true}, nft.DropLog{})
	elems := 0
	for _, s := range table.Sets {
		elems += len(s.Ranges)
	}
	for _, pod := range pl.Pods {
		prof := pl.Profile(pod.Ingress)
		switch pod.Name {
		case "client-3":
			if prof == nil || !prof.Any.IsEmpty() || len(prof.Ports) != 0 {
				e.t.Errorf("x/client-3, selected by the policy over the budget: profile %+v, want isolated, allowing nothing", prof)
			}
		case "client-4":
			if prof == nil || len(prof.Ports) != 1 || prof.Ports[0].Peers.Len() != 1 {
				e.t.Errorf("x/client-4, selected by the policy after it: profile %+v, want port 80 from x/client-5", prof)
			}
		}
	}
	if !slices.ContainsFunc(pl.Problems, func(p plan.Problem) bool { return p.Policy == "x/over-budget" }) || elems > enforce.MaxPeerRanges {
		e.t.Errorf("the table holds %d ranges and the problems are %v: want x/over-budget refused", elems, pl.Problems)
	}
	e.t.Logf("the table holds %d ranges; x/over-budget would need %d", elems, n*(n+1)/2)
}

// syncs returns how many syncs the agent made and the seconds they took,
// from its kube_fence_sync_duration_seconds histogram.
func (e *env) syncs() (n, seconds float64) {
	n, _ = e.agent.Metric(e.t.Context(), "kube_fence_sync_duration_seconds_count")
	seconds, _ = e.agent.Metric(e.t.Context(), "kube_fence_sync_duration_seconds_sum")
	return n, seconds
}

// profile writes the agent's CPU profile of the next 10 seconds to path;
// the channel closes when it is written.
func (e *env) profile(path string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		code := 0
		client := &http.Client{Transport: &http.Transport{DialContext: framework.NSDialer(e.cp.NS)}}
		resp, err := client.Get("http://" + e.agent.Opts.MetricsAddr + "/debug/pprof/profile?seconds=10")
		if err == nil {
			defer resp.Body.Close()
			code = resp.StatusCode
			var body []byte
			if body, err = io.ReadAll(resp.Body); err == nil && code == http.StatusOK {
				err = os.WriteFile(path, body, 0o644)
			}
		}
		if err != nil || code != http.StatusOK {
			e.t.Errorf("the agent's CPU profile: %d %v", code, err)
		}
	}()
	return done
}
