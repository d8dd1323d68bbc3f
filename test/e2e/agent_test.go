package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// TestAgent runs the agent as deploy/'s DaemonSet runs it (its arguments,
// environment, ServiceAccount token and confinement: own PID and mount
// namespaces, read-only root, only CAP_NET_ADMIN) against a real API server
// on one node whose pods are lab namespaces, with the seed's foreign native
// rules in the node's ip filter table from the start. Each step states the
// bound within which a change must be in the kernel, measures it, and then
// checks every pod pair with real packets against the reference evaluator.
// Steps share the cluster and run in order; the first failure ends the test.
func TestAgent(t *testing.T) {
	c := newEnv(t)
	steps := []struct {
		name string
		run  func(*env)
	}{
		{"manifests accepted by the API server", (*env).stepManifests},
		{"start with foreign rules in ip filter", (*env).stepStart},
		{"policies created, updated and deleted", (*env).stepPolicies},
		{"namespaces and pods relabelled", (*env).stepRelabel},
		{"pods appear and disappear", (*env).stepPods},
		{"API server stopped and restarted", (*env).stepAPIOutage},
		{"agent killed with SIGKILL and restarted", (*env).stepKill},
		{"odd but valid objects", (*env).stepOddObjects},
		{"metrics", (*env).stepMetrics},
		{"tampering with an owned table", (*env).stepTamperOwned},
		{"a second agent degrades, then recovers", (*env).stepSecondAgent},
		{"tampering with ownership off", (*env).stepTamperUnowned},
		{"cleanup", (*env).stepCleanup},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			parent := c.t
			c.t = t
			defer func() { c.t = parent }()
			s.run(c)
			t.Logf("step took %v", time.Since(start).Round(time.Millisecond))
		})
		if !ok {
			return
		}
	}
}

// stepManifests applies deploy/ and creates the pod the DaemonSet controller
// would create on the node: the API server must accept both.
func (c *env) stepManifests() {
	ctx := c.t.Context()
	if err := framework.ApplyManifest(ctx, c.cp.Admin, framework.RepoPath(c.t, framework.DaemonSetManifest)); err != nil {
		c.t.Fatalf("apply %s: %v", framework.DaemonSetManifest, err)
	}
	ds := framework.AgentDaemonSet(c.t)
	pod := &corev1.Pod{ObjectMeta: *ds.Spec.Template.ObjectMeta.DeepCopy(), Spec: *ds.Spec.Template.Spec.DeepCopy()}
	pod.Namespace, pod.Name, pod.Spec.NodeName = ds.Namespace, "kube-fence-template-check", nodeName
	created, err := c.cp.Admin.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if err != nil {
		c.t.Fatalf("the API server refuses the DaemonSet's pod: %v", err)
	}
	if created.Spec.Priority == nil || *created.Spec.Priority < 2_000_000_000 {
		c.t.Errorf("pod priority %v, want system-node-critical's (2000001000)", created.Spec.Priority)
	}
	c.cp.DeletePod(c.t, pod.Namespace, pod.Name)
}

// stepStart starts the agent beside the seed's foreign native rules: it must
// become ready, program the exact table, and the seed's iptables check must
// still fail (kube-fence never touches ip filter).
func (c *env) stepStart() {
	c.startDefaultAgent("agent")
	c.waitKernel(apiBound, "first sync")
	c.probeExact("no policy")
	checkSeedFailure(c.t, c.node)
	out, err := c.nftIn("list", "chain", "ip", "filter", "FORWARD")
	if err != nil || !strings.Contains(out, "oifname \"wt0\" ct state established,related accept") {
		c.t.Errorf("foreign rules in ip filter FORWARD changed: %v\n%s", err, out)
	}
}

func (c *env) stepPolicies() {
	deny := netpol("x", "deny-ingress", nil, ingress)
	c.createPolicy(deny)
	c.waitKernel(apiBound, "create: x isolated for ingress")
	c.probeExact("x isolated")

	deny.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(peers(nsPeer(map[string]string{"ns": "y"})), namedPort("http"))}
	c.updatePolicy(deny)
	c.waitKernel(apiBound, "update: x open to namespace y on named port http")
	c.probeExact("x open to y on http")

	eg := netpol("y", "a-egress-to-b", map[string]string{"pod": "a"}, egress)
	eg.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{to(peers(podPeer(map[string]string{"pod": "b"}))),
		to(nil, numberPort(corev1.ProtocolUDP, 81))}
	c.createPolicy(eg)
	c.waitKernel(apiBound, "create: y/a egress only to y/b and UDP 81")
	c.probeExact("y/a egress limited")

	c.deletePolicy("x", "deny-ingress")
	c.waitKernel(apiBound, "delete: x open again")
	c.deletePolicy("y", "a-egress-to-b")
	c.waitKernel(apiBound, "delete: y/a egress open again")
	c.probeExact("no policy")
}

func (c *env) stepRelabel() {
	blue := netpol("x", "from-blue", map[string]string{"pod": "a"}, ingress)
	blue.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(peers(nsPeer(map[string]string{"team": "blue"})))}
	clients := netpol("x", "from-clients", map[string]string{"pod": "b"}, ingress)
	clients.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(peers(podPeer(map[string]string{"role": "client"})))}
	c.createPolicy(blue)
	c.createPolicy(clients)
	c.waitKernel(apiBound, "policies selecting by labels nobody has yet")
	c.probeExact("x/a and x/b isolated")

	c.relabelNamespace("y", map[string]string{"team": "blue"})
	c.waitKernel(apiBound, "namespace y relabelled team=blue")
	c.relabelPod("x", "a", map[string]string{"role": "client"})
	c.waitKernel(apiBound, "pod x/a relabelled role=client")
	c.probeExact("y reaches x/a, x/a reaches x/b")

	c.relabelNamespace("y", map[string]string{"team": ""})
	c.waitKernel(apiBound, "label team removed from namespace y")
	c.relabelPod("x", "a", map[string]string{"role": ""})
	c.waitKernel(apiBound, "label role removed from pod x/a")
	c.probeExact("labels removed")
	c.deleteAllPolicies()
	c.waitKernel(apiBound, "policies deleted")
}

// stepPods shows --default-deny-unknown: a pod whose address the agent does
// not know yet is isolated, until its Pod is known; a pod that finished or
// was deleted is isolated again at once, before its address is reused.
func (c *env) stepPods() {
	sameNS := netpol("x", "same-namespace", nil, ingress)
	sameNS.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(peers(podPeer(nil)))}
	c.createPolicy(sameNS)
	c.waitKernel(apiBound, "x open only within x")

	newPod := podSpec{"x", "c", map[string]string{"pod": "c"}, 14}
	snap := c.lab.Snapshot()
	snap.Pods = append(snap.Pods, newPod.labPod())
	if err := c.lab.Update(c.t.Context(), snap); err != nil {
		c.t.Fatalf("add pod x/c to the lab: %v", err)
	}
	c.probeExact("x/c running, unknown to the API: isolated both ways")

	c.createPod(newPod)
	c.waitKernel(apiBound, "pod x/c Running with its addresses")
	c.probeExact("x/c known")

	c.cp.SetPodPhase(c.t, "x", "c", corev1.PodSucceeded)
	c.waitKernel(apiBound, "pod x/c Succeeded")
	c.probeExact("x/c finished: its address isolated")

	c.cp.SetPodPhase(c.t, "x", "c", corev1.PodRunning)
	c.waitKernel(apiBound, "pod x/c Running again")
	c.cp.DeletePod(c.t, "x", "c")
	c.waitKernel(apiBound, "pod x/c deleted")
	c.probeExact("x/c deleted, its namespace still up: isolated")
	snap = c.lab.Snapshot()
	snap.Pods = slicesDeleteKey(snap.Pods, newPod.key())
	if err := c.lab.Update(c.t.Context(), snap); err != nil {
		c.t.Fatalf("remove pod x/c from the lab: %v", err)
	}
	c.deleteAllPolicies()
	c.waitKernel(apiBound, "policies deleted")
}

func slicesDeleteKey(pods []*cluster.Pod, key string) []*cluster.Pod {
	var out []*cluster.Pod
	for _, p := range pods {
		if p.Key() != key {
			out = append(out, p)
		}
	}
	return out
}

// onlyFromYB isolates x/a for ingress, except from y/b on any port: the
// policy the flow prober's flows are checked against.
func (c *env) onlyFromYB() []*flow {
	np := netpol("x", "a-only-from-y-b", map[string]string{"pod": "a"}, ingress)
	np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(peers(nsPodPeer(map[string]string{"ns": "y"}, map[string]string{"pod": "b"})))}
	c.createPolicy(np)
	c.waitKernel(apiBound, "x/a open only to y/b")
	return c.flowsOnlyFromYB()
}

// stepAPIOutage stops the API server while flows run: enforcement holds, the
// agent stays live and ready; after the restart a change made then reaches
// the kernel once the informers have reconnected.
func (c *env) stepAPIOutage() {
	p := c.startProber(c.onlyFromYB()...)
	c0 := p.counts()
	time.Sleep(300 * time.Millisecond)
	snap := c.snapshot()
	c.cp.StopAPIServer(c.t)
	c1 := p.counts()
	c.tableIntactWith(snap, "API server down")
	c.probeExactWith(snap, "API server down")
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body, err := c.agent.Get(c.t.Context(), path)
		if err != nil || code != http.StatusOK {
			c.t.Errorf("%s with the API server down: %d %v %s; want 200: the kernel still holds the table for the last known state", path, code, err, body)
		}
	}
	time.Sleep(time.Second)
	c2 := p.counts()
	c.cp.StartAPIServer(c.t)
	c3 := p.counts()
	c.createPolicy(netpol("x", "b-isolated", map[string]string{"pod": "b"}, ingress))
	// The informers retry with a backoff that grows to 30s while the API
	// server is away: that, not the agent, bounds the catch-up.
	c.waitKernel(30*time.Second, "change made after the API server restarted (catch-up)")
	c4 := p.counts()
	p.close()
	c.t.Log(p.phase("before the outage", c0, c1))
	c.t.Log(p.phase("API server stopped", c1, c2))
	c.t.Log(p.phase("API server starting", c2, c3))
	c.t.Log(p.phase("after the restart", c3, c4))
	c.t.Log(p.summary())
	c.probeExact("after catch-up")
	c.deletePolicy("x", "b-isolated")
	c.waitKernel(apiBound, "policy deleted")
}

// stepKill kills the agent with SIGKILL while flows run: the table persists
// in the kernel (persist flag), no denied datagram gets through while no
// agent runs, and the next agent adopts the table.
func (c *env) stepKill() {
	p := c.startProber(c.flowsOnlyFromYB()...) // the policy stepAPIOutage created
	c0 := p.counts()
	time.Sleep(300 * time.Millisecond)
	if err := c.agent.Kill(); err != nil {
		c.t.Fatal(err)
	}
	c1 := p.counts()
	c.tableIntact("right after SIGKILL")
	c.probeExact("no agent running")
	c2 := p.counts()
	c.startDefaultAgent("agent-after-kill")
	c3 := p.counts()
	c.waitKernel(apiBound, "restarted agent")
	time.Sleep(300 * time.Millisecond)
	c4 := p.counts()
	p.close()
	c.t.Log(p.phase("before SIGKILL", c0, c1))
	c.t.Log(p.phase("no agent", c1, c2))
	c.t.Log(p.phase("agent starting", c2, c3))
	c.t.Log(p.phase("agent restarted", c3, c4))
	c.t.Log(p.summary())
	c.deleteAllPolicies()
	c.waitKernel(apiBound, "policies deleted")
}

// stepOddObjects creates objects the API accepts but that stretch an
// enforcer: named ports no pod serves, 5000 ipBlocks with excepts in one
// rule, empty selectors everywhere. The agent must enforce them exactly and
// not restart.
func (c *env) stepOddObjects() {
	pid := c.agent.Pid()
	nobody := netpol("x", "named-port-nobody-serves", nil, ingress)
	nobody.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(nil, namedPort("nobody-serves"))}
	c.createPolicy(nobody)
	nobodyOut := netpol("y", "egress-named-port-nobody-serves", map[string]string{"pod": "b"}, egress)
	nobodyOut.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{to(nil, namedPort("nobody-serves"))}
	c.createPolicy(nobodyOut)
	c.waitKernel(apiBound, "named ports nobody serves")
	c.probeExact("named ports nobody serves")

	huge := netpol("y", "huge-ipblock-list", map[string]string{"pod": "a"}, ingress)
	huge.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{from(hugeIPBlocks(5000))}
	c.createPolicy(huge)
	c.waitKernel(5*time.Second, "5000 ipBlocks with excepts")
	c.probeExact("5000 ipBlocks with excepts")

	empty := netpol("x", "empty-selectors", map[string]string{}, ingress, egress)
	empty.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{
		from(peers(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}})),
		{},
	}
	empty.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}, to(peers(networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{}}))}
	c.createPolicy(empty)
	c.waitKernel(apiBound, "empty selectors everywhere")
	c.probeExact("empty selectors everywhere")

	if c.agent.Pid() != pid {
		c.t.Fatal("the agent process changed")
	}
	select {
	case <-c.agent.Exited():
		c.t.Fatalf("the agent exited: %v", c.agent.ExitError())
	default:
	}
	samples, _ := c.agent.Metrics(c.t)
	if v, _ := framework.Value(samples, "kube_fence_policies", `kind="NetworkPolicy",state="enforced"`); v != 4 {
		c.t.Errorf("kube_fence_policies{state=enforced} = %v, want 4", v)
	}
	if v, _ := framework.Value(samples, "kube_fence_policies", `kind="NetworkPolicy",state="rejected"`); v != 0 {
		c.t.Errorf("kube_fence_policies{state=rejected} = %v, want 0", v)
	}
	c.deleteAllPolicies()
	c.waitKernel(apiBound, "policies deleted")
}
