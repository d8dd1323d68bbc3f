package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-fence/kube-fence/internal/doctor/guard"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

const (
	guardManifest = "deploy/doctor/daemonset.yaml"
	guardRBAC     = "deploy/doctor/rbac.yaml"
	guardNode     = "guarded-node"
	// the labels of the seed's native rule, as the guard's metric has them
	fatalForward = `chain="FORWARD",family="ip",owner="unknown",severity="fatal",table="filter"`
)

// guardProcess is the doctor guard run as deploy/doctor/'s DaemonSet runs it.
type guardProcess struct {
	cp     *framework.ControlPlane
	addr   string
	client *http.Client
}

// startGuard runs `kube-fence doctor` with the DaemonSet's arguments and
// environment, confined as its container (only CAP_NET_ADMIN, read-only
// root unless writableRoot: --fix's rollback directory is a writable host
// mount there), with a token of the guard's own ServiceAccount.
func startGuard(t *testing.T, cp *framework.ControlPlane, writableRoot bool, extra ...string) *guardProcess {
	t.Helper()
	data, err := os.ReadFile(framework.RepoPath(t, guardManifest))
	if err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	if err := yaml.UnmarshalStrict(data, ds); err != nil {
		t.Fatalf("%s: %v", guardManifest, err)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if len(c.Args) < 2 || c.Args[0] != "doctor" || c.Args[1] != "--watch" {
		t.Fatalf("%s: args %q do not run doctor --watch", guardManifest, c.Args)
	}
	conf, err := framework.ConfinementOf(&c)
	if err != nil {
		t.Fatalf("%s: %v", guardManifest, err)
	}
	if len(conf.Capabilities) != 1 || conf.Capabilities[0] != "NET_ADMIN" || !conf.ReadOnlyRoot || !ds.Spec.Template.Spec.HostNetwork {
		t.Fatalf("%s: want host network, CAP_NET_ADMIN only and a read-only root: %+v", guardManifest, conf)
	}
	if writableRoot {
		conf.ReadOnlyRoot = false
	}
	var args []string
	listen := ""
	for _, a := range c.Args {
		a = strings.ReplaceAll(a, "$(NODE_NAME)", guardNode)
		if v, ok := strings.CutPrefix(a, "--listen="); ok {
			listen = v
		}
		args = append(args, a)
	}
	if listen == "" {
		t.Fatalf("%s: no --listen", guardManifest)
	}
	kubeconfig := cp.ServiceAccountKubeconfig(t, "kube-system", "kube-fence-doctor")
	argv := append([]string{framework.KubeFenceBinary(t)}, args...)
	argv = append(argv, "--kubeconfig="+kubeconfig)
	argv = append(argv, extra...)
	p, err := framework.StartProcess(cp.NS, "kube-fence-doctor", cp.LogDir, []string{"GOMEMLIMIT=268435456"}, conf.Wrap(argv)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("stop the guard: %v", err)
		}
		if t.Failed() {
			t.Logf("last lines of the guard's log:\n%s", p.Tail(60))
		}
	})
	g := &guardProcess{cp: cp, addr: listen, client: &http.Client{
		Transport: &http.Transport{DialContext: framework.NSDialer(cp.NS), DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}}
	framework.WaitFor(t, 30*time.Second, "the guard's /healthz answers 200", func(ctx context.Context) (bool, error) {
		code, body, err := g.get(ctx, "/healthz")
		if code == http.StatusOK {
			return true, nil
		}
		return false, fmt.Errorf("%d %s %v", code, body, err)
	})
	return g
}

func (g *guardProcess) get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric returns a sample of the guard's /metrics (0, false when absent).
func (g *guardProcess) metric(ctx context.Context, name, labels string) (float64, bool, error) {
	code, body, err := g.get(ctx, "/metrics")
	if err != nil || code != http.StatusOK {
		return 0, false, fmt.Errorf("scrape: %d %v", code, err)
	}
	samples, _ := framework.ParseMetrics(body)
	v, ok := framework.Value(samples, name, labels)
	return v, ok, nil
}

// waitEvent waits for an Event on the guarded Node with reason and a
// message matching re.
func waitEvent(t *testing.T, cp *framework.ControlPlane, reason string, re *regexp.Regexp) {
	t.Helper()
	framework.WaitFor(t, 20*time.Second, "Event "+reason+" on Node "+guardNode, func(ctx context.Context) (bool, error) {
		evs, err := cp.Admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + guardNode})
		if err != nil {
			return false, err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Reason == reason && e.InvolvedObject.Kind == "Node" && re.MatchString(e.Message) {
				return true, nil
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		return false, fmt.Errorf("events so far: %q", seen)
	})
}

// TestDoctorGuard runs the guard as deploy/doctor/ does against a real API
// server: a native rule planted in the node's ip filter FORWARD makes the
// findings metric and a Warning Event on the Node appear, its removal
// clears the metric and says so; the guard with --fix rewrites the rule
// put back, K3s's check passes again, and the Event says what it rewrote.
func TestDoctorGuard(t *testing.T) {
	cp := framework.Start(t)
	if err := framework.ApplyManifest(t.Context(), cp.Admin, framework.RepoPath(t, guardRBAC)); err != nil {
		t.Fatal(err)
	}
	cp.CreateNode(t, guardNode, nil, "192.0.2.10")
	plant := func() {
		t.Helper()
		if out, err := cp.NS.Command("nft", "insert rule ip filter FORWARD ct state established,related accept"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	for _, cmd := range [][]string{
		{"iptables", "-N", "KUBE-ROUTER-FORWARD"},
		{"iptables", "-A", "FORWARD", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD"},
	} {
		if out, err := cp.NS.Command(cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
	}

	t.Run("report only", func(t *testing.T) {
		g := startGuard(t, cp, false)
		if v, ok, err := g.metric(t.Context(), "kube_fence_doctor_findings", fatalForward); err != nil || ok {
			t.Fatalf("before the rule: findings %v %v %v", v, ok, err)
		}
		plant()
		checkSeedFailure(t, cp.NS)
		framework.WaitFor(t, 10*time.Second, "the fatal finding in the metrics", func(ctx context.Context) (bool, error) {
			v, _, err := g.metric(ctx, "kube_fence_doctor_findings", fatalForward)
			return v == 1, err
		})
		waitEvent(t, cp, guard.ReasonBreaks, regexp.MustCompile(`^a rule in ip filter FORWARD will make iptables 1\.8\.9 -C exit 3 \("cmp sreg undef"\): K3s's network policy controller will crash-loop \(rule `+"`ct state established,related accept`"))
		if out, err := cp.NS.Command("iptables", "-D", "FORWARD", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD"); err == nil {
			t.Fatalf("report-only guard changed something: iptables -D works: %s", out)
		}
		if out, err := cp.NS.Command("nft", "flush chain ip filter FORWARD"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		framework.WaitFor(t, 10*time.Second, "the finding gone from the metrics", func(ctx context.Context) (bool, error) {
			_, ok, err := g.metric(ctx, "kube_fence_doctor_findings", fatalForward)
			return !ok, err
		})
		waitEvent(t, cp, guard.ReasonGone, regexp.MustCompile("ct state established,related accept"))
		if v, _, _ := g.metric(t.Context(), "kube_fence_doctor_repairs_total", ""); v != 0 {
			t.Errorf("report only, yet repairs_total %v", v)
		}
	})

	t.Run("fix", func(t *testing.T) {
		if out, err := cp.NS.Command("iptables", "-A", "FORWARD", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		dir := t.TempDir()
		g := startGuard(t, cp, true, "--fix", "--rollback-file="+filepath.Join(dir, "rollback.json"))
		plant()
		framework.WaitFor(t, 10*time.Second, "K3s's check passing after the guard's repair", func(ctx context.Context) (bool, error) {
			out, err := cp.NS.Command("iptables", "-t", "filter", "-C", "FORWARD", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD")
			if err != nil {
				return false, fmt.Errorf("%v: %s", err, out)
			}
			return true, nil
		})
		waitEvent(t, cp, guard.ReasonRewritten, regexp.MustCompile(`rewrote 1 rule\(s\) .* -> -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT; undo with kube-fence doctor --rollback `+regexp.QuoteMeta(dir)))
		if v, _, err := g.metric(t.Context(), "kube_fence_doctor_repairs_total", ""); err != nil || v < 1 {
			t.Errorf("repairs_total %v %v, want at least 1", v, err)
		}
		if _, ok, _ := g.metric(t.Context(), "kube_fence_doctor_findings", fatalForward); ok {
			t.Error("the finding is still in the metrics after the repair")
		}
	})
}

// TestDoctorGuardManifest pins what deploy/doctor/ promises beyond what
// TestDoctorGuard runs: the probe reaches the loopback --listen address, the
// pod uses the ServiceAccount rbac.yaml grants, it mounts nothing and does
// not repair unless the fix/ overlay says so.
func TestDoctorGuardManifest(t *testing.T) {
	data, err := os.ReadFile(framework.RepoPath(t, guardManifest))
	if err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	if err := yaml.UnmarshalStrict(data, ds); err != nil {
		t.Fatalf("%s: %v", guardManifest, err)
	}
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	joined := strings.Join(c.Args, " ")
	if !strings.Contains(joined, "--listen=127.0.0.1:9944") || strings.Contains(joined, "--fix") {
		t.Errorf("%s: args %q: want --listen=127.0.0.1:9944 and no --fix", guardManifest, c.Args)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Host != "127.0.0.1" || p.HTTPGet.Port.IntValue() != 9944 || p.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: liveness probe %+v, want GET 127.0.0.1:9944/healthz", guardManifest, c.LivenessProbe)
	}
	if len(pod.Volumes) != 0 || len(c.VolumeMounts) != 0 {
		t.Errorf("%s: report-only guard mounts %v", guardManifest, pod.Volumes)
	}
	objs, err := framework.DecodeManifest(framework.RepoPath(t, guardRBAC))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range objs {
		if m, ok := o.(metav1.Object); ok && m.GetName() == pod.ServiceAccountName && m.GetNamespace() == ds.Namespace {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: serviceAccountName %s/%s is not in %s", guardManifest, ds.Namespace, pod.ServiceAccountName, guardRBAC)
	}
	patch, err := os.ReadFile(framework.RepoPath(t, "deploy/doctor/fix/fix-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(patch), "value: --fix") || !strings.Contains(string(patch), "hostPath") {
		t.Errorf("deploy/doctor/fix/fix-patch.yaml adds no --fix or no rollback directory:\n%s", patch)
	}
}
