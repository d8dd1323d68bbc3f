package framework

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// DaemonSetManifest is the agent's DaemonSet.
const DaemonSetManifest = "deploy/daemonset.yaml"

// AgentDaemonSet reads deploy/daemonset.yaml strictly: a misspelt field is an
// error here, where the API server's default would drop it silently.
func AgentDaemonSet(t testing.TB) *appsv1.DaemonSet {
	t.Helper()
	path := RepoPath(t, DaemonSetManifest)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	if err := yaml.UnmarshalStrict(data, ds); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want the agent alone", path, len(ds.Spec.Template.Spec.Containers))
	}
	return ds
}

// AgentOptions describe one agent process.
type AgentOptions struct {
	Name        string // log file name; default kube-fence-agent
	NodeName    string // what the downward API gives as spec.nodeName
	Kubeconfig  string
	HealthAddr  string // host:port inside the namespace
	MetricsAddr string
	// Args come first (the manifest's, after "agent"); the framework adds
	// --kubeconfig and the bind addresses after them, then Extra.
	Args  []string
	Extra []string
	// Env are extra NAME=value pairs (the manifest's environment).
	Env []string
	// Confine runs the agent confined as its container would be; nil runs
	// it as a plain child process.
	Confine *Confinement
	// Owner is the test whose end stops the agent, when that is not the
	// test starting it: a parent test whose later subtests use the agent.
	Owner testing.TB
}

// AgentOptionsFromDaemonSet returns the arguments, environment and
// confinement deploy/'s DaemonSet gives the agent on node: $(VAR) references
// in args expanded as the kubelet does, NODE_NAME from spec.nodeName,
// resource fields from the container's resources.
func AgentOptionsFromDaemonSet(t testing.TB, ds *appsv1.DaemonSet, node string) AgentOptions {
	t.Helper()
	c := &ds.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	var envList []string
	for _, e := range c.Env {
		v, err := envValue(c, e, node)
		if err != nil {
			t.Fatalf("%s: %v", DaemonSetManifest, err)
		}
		env[e.Name] = v
		envList = append(envList, e.Name+"="+v)
	}
	if len(c.Args) == 0 || c.Args[0] != "agent" {
		t.Fatalf("%s: container args %q do not start with the agent subcommand", DaemonSetManifest, c.Args)
	}
	var args []string
	for _, a := range c.Args[1:] {
		args = append(args, expandVars(a, env))
	}
	conf, err := ConfinementOf(c)
	if err != nil {
		t.Fatalf("%s: %v", DaemonSetManifest, err)
	}
	return AgentOptions{NodeName: node, Args: args, Env: envList, Confine: &conf}
}

func envValue(c *corev1.Container, e corev1.EnvVar, node string) (string, error) {
	switch {
	case e.ValueFrom == nil:
		return e.Value, nil
	case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
		return node, nil
	case e.ValueFrom.ResourceFieldRef != nil:
		ref := e.ValueFrom.ResourceFieldRef
		var q resource.Quantity
		switch ref.Resource {
		case "limits.memory":
			q = c.Resources.Limits[corev1.ResourceMemory]
		case "requests.memory":
			q = c.Resources.Requests[corev1.ResourceMemory]
		default:
			return "", fmt.Errorf("env %s: resource %s not supported by the e2e framework", e.Name, ref.Resource)
		}
		return strconv.FormatInt(q.Value(), 10), nil
	}
	return "", fmt.Errorf("env %s: source not supported by the e2e framework", e.Name)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandVars expands $(VAR) from env and leaves unknown references as they
// are, as the kubelet does.
func expandVars(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := env[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// Agent is a running kube-fence agent process.
type Agent struct {
	*Process
	Opts   AgentOptions
	client *http.Client
}

// StartAgent starts `kube-fence agent` in the control plane's namespace (the
// node's, when the test passed it in Options.NS). It is stopped when the
// test (or opts.Owner) ends, unless stopped or killed before.
func (cp *ControlPlane) StartAgent(t testing.TB, opts AgentOptions) *Agent {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "kube-fence-agent"
	}
	argv := append([]string{KubeFenceBinary(t), "agent"}, opts.Args...)
	argv = append(argv, "--kubeconfig="+opts.Kubeconfig, "--node-name="+opts.NodeName,
		"--health-bind-address="+opts.HealthAddr, "--metrics-bind-address="+opts.MetricsAddr)
	argv = append(argv, opts.Extra...)
	if opts.Confine != nil {
		argv = opts.Confine.Wrap(argv)
	}
	p, err := StartProcess(cp.NS, opts.Name, cp.LogDir, opts.Env, argv...)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{Process: p, Opts: opts, client: &http.Client{
		Transport: &http.Transport{DialContext: NSDialer(cp.NS), DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}}
	owner := opts.Owner
	if owner == nil {
		owner = t
	}
	owner.Cleanup(func() {
		if err := p.Stop(stopGrace); err != nil {
			owner.Errorf("stop %s: %v", opts.Name, err)
		}
		if owner.Failed() {
			owner.Logf("last lines of %s:\n%s", p.LogPath, p.Tail(tailLines))
		}
	})
	return a
}

// Get fetches path from the health server (/healthz, /readyz) or, for
// /metrics, the metrics server, and returns the status code and body.
func (a *Agent) Get(ctx context.Context, path string) (int, string, error) {
	addr := a.Opts.HealthAddr
	if path == "/metrics" {
		addr = a.Opts.MetricsAddr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// WaitReady waits until /readyz answers 200 and returns how long that took.
// It fails the test, with the agent's last log lines, when the agent exits
// or timeout passes first.
func (a *Agent) WaitReady(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := waitFor(t.Context(), a.Process, timeout, func(ctx context.Context) error {
		code, body, err := a.Get(ctx, "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, strings.TrimSpace(body))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("agent %s not ready: %v\nlast lines of %s:\n%s", a.Opts.Name, err, a.LogPath, a.Tail(tailLines))
	}
	return time.Since(start)
}

// Metric returns the value of the unlabelled metric name from /metrics,
// for polling loops that must not fail the test on one missed scrape.
func (a *Agent) Metric(ctx context.Context, name string) (float64, error) {
	code, body, err := a.Get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("%s/metrics: %d", a.Opts.MetricsAddr, code)
	}
	samples, _ := ParseMetrics(body)
	v, ok := Value(samples, name, "")
	if !ok {
		return 0, fmt.Errorf("%s/metrics has no %s", a.Opts.MetricsAddr, name)
	}
	return v, nil
}

// Metric is one sample of the Prometheus text format.
type Metric struct {
	Name   string
	Labels string // as written between the braces, empty when none
	Value  float64
}

// Metrics scrapes /metrics and returns the samples and the declared type of
// each metric family (# TYPE lines).
func (a *Agent) Metrics(t testing.TB) ([]Metric, map[string]string) {
	t.Helper()
	code, body, err := a.Get(t.Context(), "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape %s/metrics: %d %v", a.Opts.MetricsAddr, code, err)
	}
	return ParseMetrics(body)
}

// ParseMetrics reads the Prometheus text exposition format, enough for
// tests: samples and # TYPE lines.
func ParseMetrics(text string) ([]Metric, map[string]string) {
	var samples []Metric
	types := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		m := Metric{Name: line[:sp], Value: v}
		if i := strings.IndexByte(m.Name, '{'); i >= 0 {
			m.Name, m.Labels = m.Name[:i], strings.TrimSuffix(m.Name[i+1:], "}")
		}
		samples = append(samples, m)
	}
	return samples, types
}

// Value returns the value of the sample with that name and exact labels
// text, and whether there is one.
func Value(samples []Metric, name, labels string) (float64, bool) {
	for _, s := range samples {
		if s.Name == name && s.Labels == labels {
			return s.Value, true
		}
	}
	return 0, false
}
