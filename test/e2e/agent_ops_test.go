package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// documentedMetrics are the agent's own metrics and their types, as
// docs/operations.md lists them.
var documentedMetrics = map[string]string{
	"kube_fence_sync_duration_seconds":                  "histogram",
	"kube_fence_apply_duration_seconds":                 "histogram",
	"kube_fence_changes_applied_total":                  "counter",
	"kube_fence_transactions_total":                     "counter",
	"kube_fence_verifications_total":                    "counter",
	"kube_fence_repairs_total":                          "counter",
	"kube_fence_apply_errors_total":                     "counter",
	"kube_fence_policies":                               "gauge",
	"kube_fence_pods_enforced":                          "gauge",
	"kube_fence_table_objects":                          "gauge",
	"kube_fence_last_successful_sync_timestamp_seconds": "gauge",
	"kube_fence_degraded":                               "gauge",
	"kube_fence_conntrack_cut_duration_seconds":         "histogram",
	"kube_fence_conntrack_entries_cut_total":            "counter",
	"kube_fence_conntrack_cut_errors_total":             "counter",
	"kube_fence_denied_packets_total":                   "counter",
	"kube_fence_denied_log_suppressed_total":            "counter",
	"kube_fence_denied_log_lost_total":                  "counter",
	"kube_fence_would_deny_packets_total":               "counter",
}

// labelledOnFirstRecord are the counters whose labels come from the records
// of denied packets: a run without a record shows none of their series.
var labelledOnFirstRecord = map[string]bool{
	"kube_fence_denied_packets_total":     true,
	"kube_fence_would_deny_packets_total": true,
}

// stepMetrics scrapes /metrics: every documented metric with its type and
// nothing undocumented, values that agree with the kernel, and no
// verification caused by a notification: the agent's own transactions,
// committed from a PID namespace whose process IDs the kernel does not
// report, were not mistaken for another process's.
func (c *env) stepMetrics() {
	samples, types := c.agent.Metrics(c.t)
	doc, err := os.ReadFile(framework.RepoPath(c.t, "docs/operations.md"))
	if err != nil {
		c.t.Fatal(err)
	}
	for name, typ := range types {
		if strings.HasPrefix(name, "kube_fence_") && documentedMetrics[name] == "" {
			c.t.Errorf("metric %s (%s) is exposed but not in the documented list", name, typ)
		}
	}
	for name, typ := range documentedMetrics {
		if types[name] == "" && labelledOnFirstRecord[name] {
			continue // no series until the first record; TestDeniedConnectionLog checks them
		}
		if types[name] != typ {
			c.t.Errorf("metric %s: type %q, want %q", name, types[name], typ)
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			c.t.Errorf("metric %s is not documented in docs/operations.md", name)
		}
	}
	// The gauges are set just after the transaction the kernel shows, so
	// the previous step's last change may be visible a moment before them.
	var wrong []string
	framework.WaitFor(c.t, 5*time.Second, "metrics agree with the kernel's table", func(context.Context) (bool, error) {
		have, err := c.reader.Read()
		if err != nil {
			return false, err
		}
		samples, _ = c.agent.Metrics(c.t)
		chains, rules, sets, elems := have.Counts()
		want := map[string]float64{
			`kube_fence_pods_enforced|`:                           float64(len(startPods)),
			`kube_fence_degraded|`:                                0,
			`kube_fence_table_objects|kind="chains"`:              float64(chains),
			`kube_fence_table_objects|kind="rules"`:               float64(rules),
			`kube_fence_table_objects|kind="sets"`:                float64(sets),
			`kube_fence_table_objects|kind="elements"`:            float64(elems),
			`kube_fence_verifications_total|cause="notification"`: 0,
			`kube_fence_repairs_total|cause="notification"`:       0,
		}
		wrong = wrong[:0]
		for key, w := range want {
			name, labels, _ := strings.Cut(key, "|")
			if v, ok := framework.Value(samples, name, labels); !ok || v != w {
				wrong = append(wrong, fmt.Sprintf("%s{%s} = %v (present %v), want %v", name, labels, v, ok, w))
			}
		}
		if len(wrong) > 0 {
			return false, errors.New(strings.Join(wrong, "; "))
		}
		return true, nil
	})
	rss, _ := framework.Value(samples, "process_resident_memory_bytes", "")
	heap, _ := framework.Value(samples, "go_memstats_heap_inuse_bytes", "")
	c.t.Logf("agent memory at this point (4 pods, no policy): RSS %.1f MiB, Go heap in use %.1f MiB", rss/(1<<20), heap/(1<<20))
	for _, key := range []string{`kube_fence_verifications_total|cause="after-apply"`, `kube_fence_sync_duration_seconds_count|`,
		`kube_fence_apply_duration_seconds_count|`, `kube_fence_transactions_total|`, `kube_fence_changes_applied_total|`} {
		name, labels, _ := strings.Cut(key, "|")
		if v, _ := framework.Value(samples, name, labels); v <= 0 {
			c.t.Errorf("%s{%s} = %v, want > 0 after the changes of this test", name, labels, v)
		}
	}
	last, _ := framework.Value(samples, "kube_fence_last_successful_sync_timestamp_seconds", "")
	if age := time.Since(time.Unix(int64(last), 0)); age > time.Minute {
		c.t.Errorf("last successful sync %v ago, want within the last minute", age.Round(time.Second))
	}
}

// stepTamperOwned tampers with the table as another root process would. With
// the owner flag the kernel refuses or skips every change, so the table
// stays exact without a repair, and `kube-fence agent --cleanup` refuses to
// run beside a live agent.
func (c *env) stepTamperOwned() {
	c.onlyFromYB()
	if out, err := c.nftIn("flush", "ruleset"); err != nil {
		c.t.Fatalf("nft flush ruleset: %v\n%s", err, out)
	}
	c.tableIntact("after nft flush ruleset")
	plantForeignRules(c.t, c.node) // the flush removed everyone else's rules
	for _, args := range [][]string{
		{"delete", "table", "inet", "kube-fence"},
		{"delete", "element", "inet", "kube-fence", "ingress-pods-v4", "{", "10.42.0.10", "}"},
		{"insert", "rule", "inet", "kube-fence", "forward", "accept"},
	} {
		out, err := c.nftIn(args...)
		if err == nil || !strings.Contains(out, "Operation not permitted") {
			c.t.Errorf("nft %s: %v %s; want the kernel to refuse it (Operation not permitted)", strings.Join(args, " "), err, out)
		}
		c.tableIntact("after nft " + strings.Join(args, " "))
	}
	out, err := c.runKubeFence("agent", "--cleanup")
	if err == nil || !strings.Contains(out, "owned by another process") {
		c.t.Errorf("kube-fence agent --cleanup beside a running agent: %v %s; want it refused, naming the owner", err, out)
	}
	c.tableIntact("after --cleanup beside a running agent")
	c.probeExact("after tampering with the owned table")
	samples, _ := c.agent.Metrics(c.t)
	for _, m := range []string{"kube_fence_verifications_total", "kube_fence_repairs_total"} {
		if v, _ := framework.Value(samples, m, `cause="notification"`); v != 0 {
			c.t.Errorf(`%s{cause="notification"} = %v, want 0: nothing reached the owned table`, m, v)
		}
	}
}

// stepSecondAgent starts a second agent on the node. It cannot write the
// table the first one owns: it must report that once on the Node, stay
// live, answer not-ready with the reason, and retry; when the first agent
// stops, it adopts the table and recovers.
func (c *env) stepSecondAgent() {
	second := c.startAgent("agent-second", "127.0.0.1:19943", "127.0.0.1:19942")
	framework.WaitFor(c.t, 30*time.Second, "second agent reports the table owned elsewhere", func(ctx context.Context) (bool, error) {
		code, body, err := second.Get(ctx, "/readyz")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "owned by another process"), err
	})
	framework.WaitFor(c.t, 30*time.Second, "second agent retried three times", func(context.Context) (bool, error) {
		samples, _ := second.Metrics(c.t)
		v, _ := framework.Value(samples, "kube_fence_apply_errors_total", "")
		d, _ := framework.Value(samples, "kube_fence_degraded", "")
		return v >= 3 && d == 1, nil
	})
	degraded := c.waitNodeEvent(agent.ReasonDegraded)
	if degraded.Type != corev1.EventTypeWarning || !strings.Contains(degraded.Message, "owned by another process") {
		c.t.Errorf("%s event = %s %q, want a Warning naming the owner", agent.ReasonDegraded, degraded.Type, degraded.Message)
	}
	time.Sleep(time.Second) // more retries; none may add an event
	if evs := c.nodeEvents(agent.ReasonDegraded); len(evs) != 1 || evs[0].Count != 1 {
		c.t.Errorf("%s events: %+v; want one, with count 1, however often the agent retries", agent.ReasonDegraded, evs)
	}
	if code, _, err := c.agent.Get(c.t.Context(), "/readyz"); err != nil || code != http.StatusOK {
		c.t.Errorf("first agent /readyz = %d %v beside the second, want 200", code, err)
	}
	c.tableIntact("with two agents")

	if err := c.agent.Stop(30 * time.Second); err != nil {
		c.t.Fatal(err)
	}
	c.tableIntact("after the first agent stopped (SIGTERM leaves the table)")
	took := second.WaitReady(c.t, 60*time.Second)
	c.t.Logf("second agent recovered %v after the first one stopped (its retry backoff)", took.Round(time.Millisecond))
	recovered := c.waitNodeEvent(agent.ReasonRecovered)
	if recovered.Type != corev1.EventTypeNormal {
		c.t.Errorf("%s event type %s, want Normal", agent.ReasonRecovered, recovered.Type)
	}
	samples, _ := second.Metrics(c.t)
	if v, _ := framework.Value(samples, "kube_fence_degraded", ""); v != 0 {
		c.t.Errorf("kube_fence_degraded = %v after recovery, want 0", v)
	}
	c.agent = second
	if out, err := c.nftIn("delete", "table", "inet", "kube-fence"); err == nil {
		c.t.Errorf("nft delete table succeeded after the second agent adopted the table: %s", out)
	}
	c.probeExact("second agent in charge")
}

// stepTamperUnowned restarts the agent with --table-ownership=off while
// flows run (one atomic rebuild: nothing leaks), then tampers as another
// root process: each change must be repaired within a second, found by the
// change notification, not the verify interval (30s).
func (c *env) stepTamperUnowned() {
	p := c.startProber(c.flowsOnlyFromYB()...)
	c0 := p.counts()
	time.Sleep(200 * time.Millisecond)
	if err := c.agent.Stop(30 * time.Second); err != nil {
		c.t.Fatal(err)
	}
	c.startDefaultAgent("agent-ownership-off", "--table-ownership=off")
	c.waitKernel(apiBound, "table rebuilt without owner and persist")
	c1 := p.counts()
	c.t.Log(p.phase("switch to --table-ownership=off", c0, c1))

	prev := c1
	for _, args := range [][]string{
		{"delete", "element", "inet", "kube-fence", "ingress-pods-v4", "{", "10.42.0.10", "}"},
		{"insert", "rule", "inet", "kube-fence", "forward", "accept"},
		{"flush", "chain", "inet", "kube-fence", "ingress-v4"},
		{"delete", "table", "inet", "kube-fence"},
		{"flush", "ruleset"},
	} {
		what := "nft " + strings.Join(args, " ")
		if out, err := c.nftIn(args...); err != nil {
			c.t.Fatalf("%s: %v\n%s", what, err, out)
		}
		c.waitKernel(repairBound, "repair after "+what)
		time.Sleep(50 * time.Millisecond)
		now := p.counts()
		leaked, lost := 0, 0
		for i, f := range p.flows {
			got, sent := now[i].received-prev[i].received, now[i].sent-prev[i].sent
			if f.allowed {
				lost += max(sent-got, 0) // datagrams in flight blur the boundaries
			} else {
				leaked += got
			}
		}
		c.t.Logf("%s: until the repair %d datagrams of denied flows got through and %d of allowed flows were dropped (without the owner flag nothing stops the change itself)", what, leaked, lost)
		prev = now
	}
	p.close()
	plantForeignRules(c.t, c.node)
	samples, _ := c.agent.Metrics(c.t)
	if v, _ := framework.Value(samples, "kube_fence_repairs_total", `cause="notification"`); v < 5 {
		c.t.Errorf(`kube_fence_repairs_total{cause="notification"} = %v, want at least 5 (one per tampering)`, v)
	}
	c.probeExact("after the repairs")
}

// flowsOnlyFromYB are the flows of onlyFromYB's policy, already in force.
func (c *env) flowsOnlyFromYB() []*flow {
	xa, xb, ya, yb := startPods[0], startPods[1], startPods[2], startPods[3]
	return []*flow{
		{from: yb, to: xa, allowed: true},
		{from: ya, to: xa, allowed: false},
		{from: xb, to: xa, allowed: false},
		{from: xa, to: ya, allowed: true},
	}
}

// stepCleanup removes everything: `kube-fence agent --cleanup`, confined as
// the DaemonSet's container, after the agent stopped (the table stays on
// SIGTERM); and plain `nft delete table` on the table an owning agent left
// (persistent and unowned once its agent stopped).
func (c *env) stepCleanup() {
	if err := c.agent.Stop(30 * time.Second); err != nil {
		c.t.Fatal(err)
	}
	c.tableIntact("after SIGTERM")
	out, err := c.runKubeFence("agent", "--cleanup")
	if err != nil {
		c.t.Fatalf("kube-fence agent --cleanup: %v\n%s", err, out)
	}
	c.noTable("after kube-fence agent --cleanup")

	c.startDefaultAgent("agent-last")
	c.waitKernel(apiBound, "a new agent with ownership")
	if err := c.agent.Stop(30 * time.Second); err != nil {
		c.t.Fatal(err)
	}
	c.tableIntact("after SIGTERM, owned and persistent")
	if out, err := c.nftIn("delete", "table", "inet", "kube-fence"); err != nil {
		c.t.Fatalf("nft delete table on the table a stopped agent left: %v\n%s", err, out)
	}
	c.noTable("after nft delete table")
}

// noTable checks that kube-fence's table is gone and ip filter, with the
// seed's foreign rules, is as it was.
func (c *env) noTable(what string) {
	c.t.Helper()
	if t, err := c.reader.Read(); err != nil || t != nil {
		c.t.Fatalf("%s: table still there (%v) or unreadable (%v)", what, t != nil, err)
	}
	tables, err := c.nftIn("list", "tables")
	if err != nil || strings.Contains(tables, "kube-fence") || !strings.Contains(tables, "table ip filter") {
		c.t.Errorf("%s: nft list tables: %v\n%s\nwant ip filter kept and no kube-fence", what, err, tables)
	}
	checkSeedFailure(c.t, c.node)
}

// runKubeFence runs kube-fence in the node's namespace, confined as the
// DaemonSet's container, and returns its combined output.
func (c *env) runKubeFence(args ...string) (string, error) {
	argv := c.base.Confine.Wrap(append([]string{framework.KubeFenceBinary(c.t)}, args...))
	cmd := exec.Command(argv[0], argv[1:]...)
	var out []byte
	err := c.node.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return string(out), err
}

// nodeEvents lists the core events about the node with a reason.
func (c *env) nodeEvents(reason string) []corev1.Event {
	c.t.Helper()
	sel := fields.Set{"involvedObject.kind": "Node", "involvedObject.name": nodeName, "reason": reason}.AsSelector().String()
	evs, err := c.cp.Admin.CoreV1().Events("").List(c.t.Context(), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		c.t.Fatalf("list events: %v", err)
	}
	return evs.Items
}

func (c *env) waitNodeEvent(reason string) corev1.Event {
	c.t.Helper()
	var ev corev1.Event
	framework.WaitFor(c.t, 10*time.Second, "Node event "+reason, func(context.Context) (bool, error) {
		evs := c.nodeEvents(reason)
		if len(evs) > 0 {
			ev = evs[0]
		}
		return len(evs) > 0, nil
	})
	c.t.Logf("Node event %s %s: %s", ev.Type, ev.Reason, ev.Message)
	return ev
}
