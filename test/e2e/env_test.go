package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cnpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// An env is one node of a real cluster, without a kubelet: the node is a
// lab network namespace in which etcd, kube-apiserver and the kube-fence
// agent run (as on a K3s server), and its pods are lab namespaces bridged to
// it with servers on their declared ports. The test plays the kubelet by
// creating the Node and Pods through the API with the lab's addresses, so
// the agent's table and real packets can be compared with what the API
// objects require.
type env struct {
	t      *testing.T // the running step
	root   *testing.T // the whole test: owns the agents, which outlive steps
	lab    *lab.Lab
	node   *netns.NS
	cp     *framework.ControlPlane
	reader *kernel.Conn // reads the node's table; never writes
	agent  *framework.Agent
	base   framework.AgentOptions // the DaemonSet's arguments and confinement
	cnps   cnpclient.Interface    // ClusterNetworkPolicies as the admin; see cnpClient
}

const (
	nodeName = "node-1"
	// probeTimeout bounds each lab probe: a blocked one costs this long.
	probeTimeout = time.Second
	// apiBound is the bound for a change made through the API to be in the
	// kernel: watch delivery, a 5ms debounce, compile, one transaction.
	apiBound = 2 * time.Second
	// repairBound is the bound for repairing tampering.
	repairBound = time.Second
)

var podCIDRs = []netip.Prefix{netip.MustParsePrefix("10.42.0.0/24"), netip.MustParsePrefix("fd00:10:42::/64")}

// podSpec is one pod, both as the API object and as the lab namespace.
type podSpec struct {
	ns, name string
	labels   map[string]string
	index    int // address host part
}

func (p podSpec) key() string { return p.ns + "/" + p.name }

func (p podSpec) ips() []string {
	return []string{fmt.Sprintf("10.42.0.%d", p.index), fmt.Sprintf("fd00:10:42::%x", p.index)}
}

// Every pod serves TCP 80 and UDP 81; the names let policies use named ports.
var podPorts = []corev1.ContainerPort{
	{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
	{Name: "dns", ContainerPort: 81, Protocol: corev1.ProtocolUDP},
}

func (p podSpec) labPod() *cluster.Pod {
	cp := &cluster.Pod{Namespace: p.ns, Name: p.name, NodeName: nodeName, Phase: corev1.PodRunning, Labels: p.labels}
	for _, ip := range p.ips() {
		cp.IPs = append(cp.IPs, netip.MustParseAddr(ip))
	}
	for _, port := range podPorts {
		cp.Ports = append(cp.Ports, cluster.ContainerPort{Name: port.Name, Port: port.ContainerPort, Protocol: port.Protocol})
	}
	return cp
}

// The starting cluster: namespaces x and y, pods a and b in each, the
// Kubernetes network policy e2e suite's model in small.
var (
	namespaces = map[string]map[string]string{"x": {"ns": "x"}, "y": {"ns": "y"}}
	startPods  = []podSpec{
		{"x", "a", map[string]string{"pod": "a"}, 10},
		{"x", "b", map[string]string{"pod": "b"}, 11},
		{"y", "a", map[string]string{"pod": "a"}, 12},
		{"y", "b", map[string]string{"pod": "b"}, 13},
	}
)

// newEnv builds the lab node and pods, starts the control plane in the
// node's namespace, creates the Node, Namespaces and Pods, plants the seed's
// foreign native rules in the node's ip filter table, applies deploy/ and
// starts the agent as its DaemonSet runs it.
func newEnv(t *testing.T) *env {
	t.Helper()
	snap := &cluster.Snapshot{Nodes: []*cluster.Node{{Name: nodeName, PodCIDRs: podCIDRs}}}
	for _, p := range startPods {
		snap.Pods = append(snap.Pods, p.labPod())
	}
	l, err := lab.New(t.Context(), snap, lab.Options{ProbeTimeout: probeTimeout})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	c := &env{t: t, root: t, lab: l, node: l.Node(nodeName).NS()}
	c.cp = framework.StartWithOptions(t, framework.Options{NS: c.node})
	if c.reader, err = kernel.Open(kernel.Options{NetNSFD: c.node.FD(), Ownership: kernel.OwnershipOff}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.reader.Close() })

	var addrs []string
	for _, a := range l.Snapshot().Nodes[0].Addresses {
		addrs = append(addrs, a.String())
	}
	cidrs := []string{podCIDRs[0].String(), podCIDRs[1].String()}
	c.cp.CreateNode(t, nodeName, cidrs, addrs...)
	for name, labels := range namespaces {
		c.cp.CreateNamespace(t, name, labels)
	}
	for _, p := range startPods {
		c.createPod(p)
	}
	plantForeignRules(t, c.node)
	c.base = framework.AgentOptionsFromDaemonSet(t, framework.AgentDaemonSet(t), nodeName)
	c.base.Kubeconfig = c.cp.AgentKubeconfig(t)
	return c
}

// startAgent starts an agent with the DaemonSet's arguments, environment and
// confinement, on the given loopback ports of the node, plus extra flags.
func (c *env) startAgent(name, health, metrics string, extra ...string) *framework.Agent {
	c.t.Helper()
	opts := c.base
	opts.Name, opts.HealthAddr, opts.MetricsAddr = name, health, metrics
	opts.Extra, opts.Owner = extra, c.root
	return c.cp.StartAgent(c.t, opts)
}

// startDefaultAgent starts the agent on its default ports and makes it the
// cluster's agent.
func (c *env) startDefaultAgent(name string, extra ...string) *framework.Agent {
	c.t.Helper()
	c.agent = c.startAgent(name, agent.DefaultHealthAddr, agent.DefaultMetricsAddr, extra...)
	took := c.agent.WaitReady(c.t, 60*time.Second)
	c.t.Logf("agent %s ready %v after start", name, took.Round(time.Millisecond))
	return c.agent
}

// createPod plays the scheduler and the kubelet: a pod bound to the node,
// then Running with the lab's addresses.
func (c *env) createPod(p podSpec) {
	c.t.Helper()
	c.cp.CreatePod(c.t, framework.Pod(p.ns, p.name, nodeName, p.labels, podPorts...))
	c.cp.SetPodRunning(c.t, p.ns, p.name, p.ips()...)
}

// snapshot lists what the agent watches and converts it as the agent does.
func (c *env) snapshot() *cluster.Snapshot {
	c.t.Helper()
	ctx, all := c.t.Context(), metav1.ListOptions{}
	snap := &cluster.Snapshot{}
	nss, err := c.cp.Admin.CoreV1().Namespaces().List(ctx, all)
	if err != nil {
		c.t.Fatalf("list namespaces: %v", err)
	}
	for i := range nss.Items {
		snap.Namespaces = append(snap.Namespaces, cluster.NamespaceFromAPI(&nss.Items[i]))
	}
	pods, err := c.cp.Admin.CoreV1().Pods("").List(ctx, all)
	if err != nil {
		c.t.Fatalf("list pods: %v", err)
	}
	for i := range pods.Items {
		if p, err := cluster.PodFromAPI(&pods.Items[i]); err == nil {
			snap.Pods = append(snap.Pods, p)
		}
	}
	pols, err := c.cp.Admin.NetworkingV1().NetworkPolicies("").List(ctx, all)
	if err != nil {
		c.t.Fatalf("list networkpolicies: %v", err)
	}
	for i := range pols.Items {
		snap.Policies = append(snap.Policies, &pols.Items[i])
	}
	node, err := c.cp.Admin.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("get node: %v", err)
	}
	n, err := cluster.NodeFromAPI(node)
	if err != nil {
		c.t.Fatal(err)
	}
	snap.Nodes = []*cluster.Node{n}
	snap.ClusterNetworkPolicies = c.clusterPolicies()
	return snap
}

// wantTable is the table the API objects require on the node: the same
// compiler and renderer the agent runs, on the same objects.
func (c *env) wantTable(snap *cluster.Snapshot) *nft.Table {
	_, table := enforce.Preview(snap, nodeName, policy.Options{DefaultDenyUnknown: agent.Defaults().DefaultDenyUnknown}, nft.DropLog{})
	return table
}

// waitKernel waits until the node's table is exactly the one the API objects
// require and returns how long that took, failing the test with the
// remaining differences when bound passes first.
func (c *env) waitKernel(bound time.Duration, what string) time.Duration {
	c.t.Helper()
	start := time.Now()
	want := c.wantTable(c.snapshot())
	var diff []string
	for {
		// A read racing with the agent's transaction can find a set gone
		// between listing the sets and dumping its elements: read again.
		have, err := c.reader.Read()
		if err == nil {
			d := nft.Diff(want, have)
			if d.Empty() {
				took := time.Since(start)
				c.t.Logf("%s: in the kernel after %v (bound %v)", what, took.Round(time.Microsecond), bound)
				return took
			}
			diff = d.Differences
		} else {
			diff = []string{"read table: " + err.Error()}
		}
		if time.Since(start) > bound {
			c.t.Fatalf("%s: the kernel's table is not the one the API objects require within %v; %d differences:\n  %s",
				what, bound, len(diff), strings.Join(diff[:min(len(diff), 20)], "\n  "))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// tableIntact fails unless the kernel's table is exactly the required one
// right now.
func (c *env) tableIntact(what string) {
	c.t.Helper()
	c.tableIntactWith(c.snapshot(), what)
}

func (c *env) tableIntactWith(snap *cluster.Snapshot, what string) {
	c.t.Helper()
	have, err := c.reader.Read()
	if err != nil {
		c.t.Fatalf("%s: read table: %v", what, err)
	}
	if d := nft.Diff(c.wantTable(snap), have); !d.Empty() {
		c.t.Fatalf("%s: table differs from the required one:\n  %s", what, strings.Join(d.Differences[:min(len(d.Differences), 20)], "\n  "))
	}
}

// probeExact probes every ordered pair of pods on every port and family and
// compares each result with the reference evaluator on the API objects. A
// pod the API does not know (or no longer knows) on this node is isolated
// both ways (--default-deny-unknown). A denied connection that connected
// fails at once; an allowed one that did not is probed once more, since a
// 2-core machine can stall a probe.
func (c *env) probeExact(what string) {
	c.t.Helper()
	c.probeExactWith(c.snapshot(), what)
}

// probeExactWith is probeExact against a snapshot taken before, for when the
// API server is down.
func (c *env) probeExactWith(snap *cluster.Snapshot, what string) {
	c.t.Helper()
	targets := c.lab.Targets()
	results, err := c.lab.ProbeTargets(c.t.Context(), targets)
	if err != nil {
		c.t.Fatalf("%s: probe: %v", what, err)
	}
	var retry []lab.Target
	var wrong []string
	allowed := 0
	for _, r := range results {
		want := expectAllowed(snap, r.Target)
		if want {
			allowed++
		}
		switch {
		case r.Connected == want && r.Problem == "":
		case want && !r.Connected:
			retry = append(retry, r.Target)
		default:
			wrong = append(wrong, describe(r, want))
		}
	}
	if len(retry) > 0 {
		again, err := c.lab.ProbeTargets(c.t.Context(), retry)
		if err != nil {
			c.t.Fatalf("%s: probe: %v", what, err)
		}
		for _, r := range again {
			if !r.Connected {
				wrong = append(wrong, describe(r, true))
			}
		}
	}
	if len(wrong) > 0 {
		c.t.Fatalf("%s: %d of %d probes disagree with the API objects:\n  %s", what, len(wrong), len(results), strings.Join(wrong, "\n  "))
	}
	c.t.Logf("%s: %d probes exact (%d allowed, %d denied)", what, len(results), allowed, len(results)-allowed)
}

func describe(r lab.Result, want bool) string {
	verdict := map[bool]string{true: "allowed", false: "denied"}
	return fmt.Sprintf("%s -> %s %s/%d %s: %s, want %s %s", r.From, r.To, r.Protocol, r.Port, r.IP,
		map[bool]string{true: "connected", false: "blocked"}[r.Connected], verdict[want], r.Problem)
}

// expectAllowed is the reference verdict for one probe, over every tier
// (without ClusterNetworkPolicies it is NetworkPolicy's verdict).
func expectAllowed(snap *cluster.Snapshot, t lab.Target) bool {
	from, to := podByKey(snap, t.From), podByKey(snap, t.To)
	if from == nil || to == nil {
		return false // an address of the pod CIDR without a known pod
	}
	var src netip.Addr
	for _, ip := range from.IPs {
		if ip.Is4() == t.IP.Is4() {
			src = ip
		}
	}
	proto, _ := policy.ProtocolFromAPI(t.Protocol)
	return policy.Decide(snap, policy.Endpoint{Pod: from, IP: src}, policy.Endpoint{Pod: to, IP: t.IP}, proto, uint16(t.Port)).Allowed
}

// podByKey returns the enforceable pod of this node with that key.
func podByKey(snap *cluster.Snapshot, key string) *cluster.Pod {
	for _, p := range snap.Pods {
		if p.Key() == key && p.NodeName == nodeName && p.Enforceable() {
			return p
		}
	}
	return nil
}

// The API writes the tests make.

func (c *env) createPolicy(np *networkingv1.NetworkPolicy) {
	c.t.Helper()
	if _, err := c.cp.Admin.NetworkingV1().NetworkPolicies(np.Namespace).Create(c.t.Context(), np, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create NetworkPolicy %s/%s: %v", np.Namespace, np.Name, err)
	}
}

func (c *env) updatePolicy(np *networkingv1.NetworkPolicy) {
	c.t.Helper()
	cur, err := c.cp.Admin.NetworkingV1().NetworkPolicies(np.Namespace).Get(c.t.Context(), np.Name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	np.ResourceVersion = cur.ResourceVersion
	if _, err := c.cp.Admin.NetworkingV1().NetworkPolicies(np.Namespace).Update(c.t.Context(), np, metav1.UpdateOptions{}); err != nil {
		c.t.Fatalf("update NetworkPolicy %s/%s: %v", np.Namespace, np.Name, err)
	}
}

func (c *env) deletePolicy(ns, name string) {
	c.t.Helper()
	if err := c.cp.Admin.NetworkingV1().NetworkPolicies(ns).Delete(c.t.Context(), name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatalf("delete NetworkPolicy %s/%s: %v", ns, name, err)
	}
}

// deleteAllPolicies returns the cluster to no policy at all.
func (c *env) deleteAllPolicies() {
	c.t.Helper()
	for ns := range namespaces {
		err := c.cp.Admin.NetworkingV1().NetworkPolicies(ns).DeleteCollection(c.t.Context(), metav1.DeleteOptions{}, metav1.ListOptions{})
		if err != nil {
			c.t.Fatalf("delete NetworkPolicies in %s: %v", ns, err)
		}
	}
}

func (c *env) relabelPod(ns, name string, labels map[string]string) {
	c.t.Helper()
	c.patchLabels(func(patch []byte) error {
		_, err := c.cp.Admin.CoreV1().Pods(ns).Patch(c.t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}, labels, "pod "+ns+"/"+name)
}

func (c *env) relabelNamespace(name string, labels map[string]string) {
	c.t.Helper()
	c.patchLabels(func(patch []byte) error {
		_, err := c.cp.Admin.CoreV1().Namespaces().Patch(c.t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}, labels, "namespace "+name)
}

// patchLabels sets labels with a merge patch; a nil value removes a label.
func (c *env) patchLabels(patch func([]byte) error, labels map[string]string, what string) {
	c.t.Helper()
	var parts []string
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := fmt.Sprintf("%q", labels[k])
		if labels[k] == "" {
			v = "null"
		}
		parts = append(parts, fmt.Sprintf("%q:%s", k, v))
	}
	body := []byte(`{"metadata":{"labels":{` + strings.Join(parts, ",") + `}}}`)
	if err := patch(body); err != nil {
		c.t.Fatalf("relabel %s: %v", what, err)
	}
}

// nftIn runs nft in the node's namespace.
func (c *env) nftIn(args ...string) (string, error) {
	out, err := c.node.Command("nft", args...)
	return string(out), err
}
