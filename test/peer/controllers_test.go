//go:build peer

package peer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// controller is one enforcer under measurement, started and stopped once
// per run in the node's network namespace.
type controller interface {
	name() string
	start(t *testing.T) running
}

// running is a started controller. Its checks answer from one look at the
// controller's metrics or the kernel, without failing the test, for
// polling loops.
type running interface {
	pid() int
	// enforcing reports whether every local pod is enforced: the first
	// full sync is done.
	enforcing(ctx context.Context) (bool, error)
	// mark remembers the counters the next checks compare with.
	mark(ctx context.Context) error
	hasPolicy(ctx context.Context, name string) (bool, error)
	hasPod(ctx context.Context, name string) (bool, error)
	// fullSync is the time of a full sync, in milliseconds.
	fullSync(ctx context.Context) (float64, error)
	stop() error
}

// kubeFence runs the agent as test/scale does.
type kubeFence struct {
	cp         *framework.ControlPlane
	c          *testCluster
	kubeconfig string
	want       int // pods_enforced once the cluster is enforced
}

func newKubeFence(t *testing.T, cp *framework.ControlPlane, c *testCluster) *kubeFence {
	want := len(policy.Compile(c.s, c.node, policy.Options{}).Pods)
	framework.KubeFenceBinary(t) // built now, not in the first run's startup time
	return &kubeFence{cp: cp, c: c, kubeconfig: cp.AgentKubeconfig(t), want: want}
}

func (k *kubeFence) name() string { return "kube-fence" }

func (k *kubeFence) start(t *testing.T) running {
	a := k.cp.StartAgent(t, framework.AgentOptions{NodeName: k.c.node, Kubeconfig: k.kubeconfig,
		HealthAddr: "127.0.0.1:9943", MetricsAddr: "127.0.0.1:9942"})
	return &fenceRun{a: a, want: k.want}
}

type fenceRun struct {
	a                     *framework.Agent
	want                  int
	txs, policies, podsOK float64
}

func (r *fenceRun) pid() int { return r.a.Pid() }

func (r *fenceRun) scrape(ctx context.Context) ([]framework.Metric, error) {
	code, body, err := r.a.Get(ctx, "/metrics")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("kube-fence /metrics: %d %v", code, err)
	}
	samples, _ := framework.ParseMetrics(body)
	return samples, nil
}

func (r *fenceRun) enforcing(ctx context.Context) (bool, error) {
	m, err := r.scrape(ctx)
	if err != nil {
		return false, err
	}
	v, _ := framework.Value(m, "kube_fence_pods_enforced", "")
	return int(v) == r.want, nil
}

func (r *fenceRun) mark(ctx context.Context) error {
	m, err := r.scrape(ctx)
	if err != nil {
		return err
	}
	r.txs, _ = framework.Value(m, "kube_fence_transactions_total", "")
	r.policies, _ = framework.Value(m, "kube_fence_policies", `kind="NetworkPolicy",state="enforced"`)
	r.podsOK, _ = framework.Value(m, "kube_fence_pods_enforced", "")
	return nil
}

// hasPolicy: the agent counts one more policy enforced and has committed
// the transaction that holds it (both are set by the same sync).
func (r *fenceRun) hasPolicy(ctx context.Context, _ string) (bool, error) {
	m, err := r.scrape(ctx)
	if err != nil {
		return false, err
	}
	txs, _ := framework.Value(m, "kube_fence_transactions_total", "")
	p, _ := framework.Value(m, "kube_fence_policies", `kind="NetworkPolicy",state="enforced"`)
	return txs > r.txs && p > r.policies, nil
}

func (r *fenceRun) hasPod(ctx context.Context, _ string) (bool, error) {
	m, err := r.scrape(ctx)
	if err != nil {
		return false, err
	}
	txs, _ := framework.Value(m, "kube_fence_transactions_total", "")
	p, _ := framework.Value(m, "kube_fence_pods_enforced", "")
	return txs > r.txs && p > r.podsOK, nil
}

// fullSync is the agent's first sync: the whole cluster compiled,
// rendered and committed into an empty kernel table (FenceFullSync). Later
// syncs apply only what changed, so they are no full syncs.
func (r *fenceRun) fullSync(context.Context) (float64, error) {
	b, err := os.ReadFile(r.a.LogPath)
	if err != nil {
		return 0, err
	}
	d, err := FenceFullSync(string(b))
	return ms(d), err
}

func (r *fenceRun) stop() error { return r.a.Stop(10 * time.Second) }

// kubeRouter runs kube-router's network policy controller alone, with
// iptables as its backend (the only one v2.6.3-k3s1 and v2.10.0 have), IPv4
// and IPv6. Alone it is the same controller K3s runs embedded.
type kubeRouter struct {
	cp      *framework.ControlPlane
	c       *testCluster
	bin     string
	version string
	// healthAddr: the binary has --health-addr (v2.10 does, v2.6 does not
	// and then listens for health checks on every address of the namespace).
	healthAddr bool
}

func newKubeRouter(t *testing.T, cp *framework.ControlPlane, c *testCluster, bin string) *kubeRouter {
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("-peer.kube-router: %s is not an executable (run hack/build-kube-router.sh): %v", bin, err)
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput() // pflag exits non-zero after --help
	if !HasFlag(string(help), "run-firewall") {
		t.Fatalf("-peer.kube-router: %s --help lists no --run-firewall; is it kube-router?\n%s", bin, help)
	}
	addNodeAddresses(t, cp, c.s.Nodes[0].Addresses)
	return &kubeRouter{cp: cp, c: c, bin: bin, version: routerVersion(bin), healthAddr: HasFlag(string(help), "health-addr")}
}

// addNodeAddresses puts the node's addresses on the namespace's loopback,
// as host addresses (/32, /128), so the namespace has them as a real node
// does: kube-router's policy controller refuses to start without an
// interface holding the node's IP (it looks up the node's subnet there).
// kube-fence does not need them; it runs with them all the same.
func addNodeAddresses(t *testing.T, cp *framework.ControlPlane, addrs []netip.Addr) {
	h, err := cp.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(netip.PrefixFrom(a, a.BitLen()).String())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddrReplace(lo, addr); err != nil {
			t.Fatalf("add %s to lo in the node's namespace: %v", addr, err)
		}
	}
}

func (k *kubeRouter) name() string { return "kube-router " + k.version }

const routerMetrics = "127.0.0.1:9952"

func (k *kubeRouter) start(t *testing.T) running {
	argv := []string{k.bin, "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--kubeconfig=" + k.cp.AdminKubeconfig, "--hostname-override=" + k.c.node,
		"--enable-ipv4=true", "--enable-ipv6=true",
		"--metrics-addr=127.0.0.1", "--metrics-port=9952", "--metrics-path=/metrics",
		"--health-port=9953", "-v=1"}
	if k.healthAddr {
		argv = append(argv, "--health-addr=127.0.0.1")
	}
	p := k.cp.StartProcess(t, "kube-router-"+k.version, argv...)
	return &routerRun{p: p, cp: k.cp, c: k.c, client: &http.Client{
		Transport: &http.Transport{DialContext: framework.NSDialer(k.cp.NS), DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}}
}

type routerRun struct {
	p      *framework.Process
	cp     *framework.ControlPlane
	c      *testCluster
	client *http.Client
	// syncs and syncSum are the sync-time histogram at mark; looked is
	// its count when iptables-save was last read.
	syncs, syncSum, looked float64
}

func (r *routerRun) pid() int { return r.p.Pid() }

func (r *routerRun) save() (string, error) {
	b, err := r.cp.NS.Command("iptables-save", "-t", "filter")
	if err != nil {
		return "", fmt.Errorf("iptables-save: %w: %s", err, b)
	}
	return string(b), nil
}

func (r *routerRun) scrape(ctx context.Context) ([]framework.Metric, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+routerMetrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kube-router /metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kube-router /metrics: %d %v", resp.StatusCode, err)
	}
	m, _ := framework.ParseMetrics(string(b))
	return m, nil
}

// The checks below read iptables-save only once kube-router has finished a
// sync since the last look (its sync-time histogram counts one more): a
// dump of the whole filter table every 10 ms would take a core from
// kube-router on a 2-core machine. kube-router observes the sync time after
// iptables-restore and the ipset restore returned, so the rules are in the
// kernel by then, and the time is taken when the sync is seen.

// synced reports whether kube-router finished a sync since the last call,
// and then whether the rules it wrote satisfy has.
func (r *routerRun) synced(ctx context.Context, has func(save string) bool) (bool, error) {
	select {
	case <-r.p.Exited():
		return false, fmt.Errorf("%w: %v\n%s", errExited, r.p.ExitError(), r.p.Tail(30))
	default:
	}
	m, err := r.scrape(ctx)
	if err != nil {
		return false, err
	}
	n, _ := framework.Value(m, routerSync+"_count", "")
	if n <= r.looked {
		return false, nil
	}
	r.looked = n
	s, err := r.save()
	return err == nil && has(s), err
}

// enforcing: a sync is done and every local pod has its chain.
func (r *routerRun) enforcing(ctx context.Context) (bool, error) {
	return r.synced(ctx, func(s string) bool { return RouterPods(s) >= r.c.localPods })
}

const routerSync = "kube_router_controller_iptables_sync_time"

func (r *routerRun) mark(ctx context.Context) error {
	m, err := r.scrape(ctx)
	if err != nil {
		return err
	}
	r.syncs, _ = framework.Value(m, routerSync+"_count", "")
	r.syncSum, _ = framework.Value(m, routerSync+"_sum", "")
	r.looked = r.syncs
	return nil
}

func (r *routerRun) hasPolicy(ctx context.Context, name string) (bool, error) {
	return r.synced(ctx, func(s string) bool { return RouterHasPolicy(s, name) })
}

func (r *routerRun) hasPod(ctx context.Context, name string) (bool, error) {
	return r.synced(ctx, func(s string) bool { return RouterHasPod(s, r.c.namespace, name) })
}

// fullSync is the mean of kube-router's syncs since mark: each one is a
// full sync (every pod, policy and ipset rebuilt and restored).
func (r *routerRun) fullSync(ctx context.Context) (float64, error) {
	m, err := r.scrape(ctx)
	if err != nil {
		return 0, err
	}
	n, _ := framework.Value(m, routerSync+"_count", "")
	sum, _ := framework.Value(m, routerSync+"_sum", "")
	if n <= r.syncs {
		return 0, fmt.Errorf("%s: no sync since the measurements began", routerSync)
	}
	return (sum - r.syncSum) / (n - r.syncs) * 1000, nil
}

func (r *routerRun) stop() error { return r.p.Stop(10 * time.Second) }

// procStatus reads a /proc/PID/status field in kB and returns MiB.
func procStatus(pid int, field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}
