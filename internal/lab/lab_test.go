package lab_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/labtest"
	"github.com/kube-fence/kube-fence/internal/lab/report"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/lab/topo"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// model writes the Kubernetes e2e model: namespaces x, y, z...; pods a, b,
// c... labelled pod=<name>, serving the given ports as serve-<port>-<proto>.
// With nodes > 1, Node objects n0.. are declared and pods spread over them.
func model(namespaces, pods string, nodes int, ports ...string) string {
	var b strings.Builder
	for i := 0; i < nodes && nodes > 1; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Node\nmetadata: {name: n%d}\n", i)
	}
	k := 0
	for _, ns := range namespaces {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %q, labels: {ns: %q}}\n", ns, ns)
		for _, p := range pods {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata: {name: %q, namespace: %q, labels: {pod: %q}}\nspec:\n", p, ns, p)
			if nodes > 1 {
				fmt.Fprintf(&b, "  nodeName: n%d\n", k%nodes)
			}
			k++
			b.WriteString("  containers:\n  - name: c\n    ports:\n")
			for _, port := range ports {
				var num int
				var proto string
				fmt.Sscanf(strings.Replace(port, "/", " ", 1), "%d %s", &num, &proto)
				fmt.Fprintf(&b, "    - {name: serve-%d-%s, containerPort: %d, protocol: %s}\n", num, strings.ToLower(proto), num, proto)
			}
		}
	}
	return b.String()
}

func snapshot(t testing.TB, yaml string) *cluster.Snapshot {
	t.Helper()
	s, err := scenario.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func start(t testing.TB, snap *cluster.Snapshot, opts lab.Options) *lab.Lab {
	t.Helper()
	testenv.RequireRoot(t)
	l, err := lab.New(context.Background(), snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func probe(t testing.TB, l *lab.Lab) []lab.Result {
	t.Helper()
	rs, err := l.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// expect checks every result against want(from, to) and that both families
// and every protocol were probed.
func expect(t *testing.T, rs []lab.Result, want func(r lab.Result) bool) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range rs {
		seen[string(r.Family)]++
		seen[string(r.Protocol)]++
		if r.Problem != "" {
			t.Errorf("%s -> %s %s/%d %s: %s", r.From, r.To, r.Protocol, r.Port, r.IP, r.Problem)
		}
		if r.Connected != want(r) {
			t.Errorf("%s -> %s %s/%d %s: connected=%v, want %v", r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected, want(r))
		}
	}
	for _, k := range []string{"IPv4", "IPv6", "TCP", "UDP", "SCTP"} {
		if seen[k] == 0 {
			t.Errorf("no %s probe among %d results", k, len(rs))
		}
	}
	if t.Failed() {
		var b strings.Builder
		report.WriteTable(&b, rs)
		t.Log("\n" + b.String())
	}
}

func TestReachabilityWithoutPolicy(t *testing.T) {
	for _, layout := range []topo.Layout{topo.Bridge, topo.Routed} {
		for _, nodes := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%dnodes", layout, nodes), func(t *testing.T) {
				snap := snapshot(t, model("xy", "ab", nodes, "80/TCP", "81/UDP", "82/SCTP"))
				l := start(t, snap, lab.Options{Layout: layout})
				rs := probe(t, l)
				// 4 pods: 12 ordered pairs x 3 ports x 2 families.
				if len(rs) != 72 {
					t.Errorf("%d probes, want 72", len(rs))
				}
				expect(t, rs, func(lab.Result) bool { return true })
				if nodes == 2 {
					if got := l.Snapshot().Pods[1].NodeName; got != "n1" {
						t.Errorf("pod x/b on %q, want n1", got)
					}
				}
			})
		}
	}
}

func TestDropEnforcerBlocks(t *testing.T) {
	for _, nodes := range []int{1, 2} {
		t.Run(fmt.Sprintf("%dnodes", nodes), func(t *testing.T) {
			enf := &labtest.DropEnforcer{Rules: labtest.DropTo("x/b")}
			snap := snapshot(t, model("xy", "ab", nodes, "80/TCP", "81/UDP", "82/SCTP"))
			l := start(t, snap, lab.Options{Enforcer: enf, ProbeTimeout: 500 * time.Millisecond})
			expect(t, probe(t, l), func(r lab.Result) bool { return r.To != "x/b" })
			if got := len(enf.Calls()); got != nodes {
				t.Errorf("enforcer called %d times, want once per node (%d)", got, nodes)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	enf := &labtest.DropEnforcer{Rules: func(_ string, snap *cluster.Snapshot) []labtest.Drop {
		// Drop traffic to pods labelled blocked=yes: relabelling must reach
		// the enforcer.
		var out []labtest.Drop
		for _, p := range snap.Pods {
			if p.Labels["blocked"] == "yes" {
				for _, ip := range p.IPs {
					out = append(out, labtest.Drop{Dst: ip})
				}
			}
		}
		return out
	}}
	l := start(t, snapshot(t, model("xy", "ab", 2, "80/TCP", "81/UDP", "82/SCTP")),
		lab.Options{Enforcer: enf, ProbeTimeout: 500 * time.Millisecond})
	before := l.Snapshot()

	// Relabel x/a, add y/c (no addresses given), remove y/b, add a policy.
	next := l.Snapshot()
	next.Pods[0].Labels["blocked"] = "yes"
	next.Pods = slices.DeleteFunc(next.Pods, func(p *cluster.Pod) bool { return p.Key() == "y/b" })
	next.Pods = append(next.Pods, &cluster.Pod{
		Namespace: "y", Name: "c", NodeName: "n1", Labels: map[string]string{"pod": "c"},
		Ports: []cluster.ContainerPort{{Name: "serve-80-tcp", Port: 80, Protocol: corev1.ProtocolTCP}},
	})
	next.Policies = append(next.Policies, before.Policies...)
	if err := l.Update(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	after := l.Snapshot()
	for _, p := range before.Pods {
		if p.Key() == "y/b" {
			continue
		}
		var q *cluster.Pod
		for _, x := range after.Pods {
			if x.Key() == p.Key() {
				q = x
			}
		}
		if q == nil || !slices.Equal(p.IPs, q.IPs) {
			t.Errorf("pod %s changed addresses: %v -> %v", p.Key(), p.IPs, q)
		}
	}
	rs := probe(t, l)
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.From] = true
		seen[r.To] = true
		if r.Connected == (r.To == "x/a") {
			t.Errorf("%s -> %s %s/%d %s: connected=%v", r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected)
		}
	}
	if !seen["y/c"] || seen["y/b"] {
		t.Errorf("probed pods %v: want y/c and not y/b", seen)
	}
	calls := enf.Calls()
	last := calls[len(calls)-1]
	if len(calls) != 4 || last.Node != "n1" || len(last.Snap.Pods) != 4 {
		t.Errorf("enforcer calls: %d, last on %s with %d pods; want 4 (2 nodes x 2), the last with 4 pods",
			len(calls), last.Node, len(last.Snap.Pods))
	}

	// The nodes cannot change.
	bad := l.Snapshot()
	bad.Nodes = bad.Nodes[:1]
	if err := l.Update(context.Background(), bad); err == nil || !scenario.IsInvalid(err) {
		t.Errorf("Update removing a node: %v, want an invalid-input error", err)
	}
}

// TestProbeDuringUpdate runs a probe while Update relabels pods: the probes
// must all finish without error.
func TestProbeDuringUpdate(t *testing.T) {
	enf := &labtest.DropEnforcer{}
	l := start(t, snapshot(t, model("xy", "ab", 1, "80/TCP")), lab.Options{Enforcer: enf})
	done := make(chan error)
	go func() {
		for i := 0; i < 5; i++ {
			s := l.Snapshot()
			s.Pods[0].Labels["round"] = fmt.Sprint(i)
			if err := l.Update(context.Background(), s); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 5; i++ {
		probe(t, l)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCancelledProbe(t *testing.T) {
	enf := &labtest.DropEnforcer{Rules: labtest.DropTo("x/a", "x/b", "y/a", "y/b")}
	l := start(t, snapshot(t, model("xy", "ab", 1, "80/TCP", "81/UDP")), lab.Options{Enforcer: enf, ProbeTimeout: 5 * time.Second, Parallelism: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := l.Probe(ctx); err == nil {
		t.Fatal("Probe with a cancelled context succeeded")
	}
}

// TestCleanup builds and closes a lab and checks no descriptor (namespace,
// socket, netlink handle) and no goroutine is left.
func TestCleanup(t *testing.T) {
	testenv.RequireRoot(t)
	snap := snapshot(t, model("xy", "ab", 2, "80/TCP", "81/UDP", "82/SCTP"))
	fds, goroutines := countFDs(t), runtime.NumGoroutine()
	enf := &labtest.DropEnforcer{}
	l, err := lab.New(context.Background(), snap, lab.Options{Enforcer: enf})
	if err != nil {
		t.Fatal(err)
	}
	if n := countFDs(t); n < fds+7 { // 2 nodes, 4 pods, fabric
		t.Fatalf("%d descriptors open with the lab up, %d before: is the lab really built?", n, fds)
	}
	probe(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !enf.Closed() {
		t.Error("Close did not close the enforcer")
	}
	deadline := time.Now().Add(2 * time.Second)
	for (countFDs(t) > fds || runtime.NumGoroutine() > goroutines) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := countFDs(t); n > fds {
		t.Errorf("%d descriptors open after Close, %d before", n, fds)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

func countFDs(t testing.TB) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestInvalidSnapshot(t *testing.T) {
	testenv.RequireRoot(t)
	snap := &cluster.Snapshot{
		Nodes: []*cluster.Node{{Name: "n0"}, {Name: "n1"}},
		Pods:  []*cluster.Pod{{Namespace: "x", Name: "a"}},
	}
	if _, err := lab.New(context.Background(), snap, lab.Options{}); err == nil || !scenario.IsInvalid(err) {
		t.Errorf("New with a pod on no node: %v, want an invalid-input error", err)
	}
	if _, err := lab.New(context.Background(), &cluster.Snapshot{}, lab.Options{Layout: "overlay"}); err == nil {
		t.Error("New accepted layout overlay")
	}
}
