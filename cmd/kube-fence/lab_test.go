package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/testenv"
)

// run executes kube-fence with args and stdin, returning stdout, stderr and
// the exit status main would use.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	code := 0
	var ex exitError
	switch {
	case errors.As(err, &ex):
		code = ex.code
		errOut.WriteString(ex.msg)
	case err != nil:
		code = 1
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

// Two pods, the second given as JSON and IPv4 only.
const twoPods = `apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  containers:
  - ports:
    - {containerPort: 80}
    - {containerPort: 9, protocol: SCTP}
---
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "x"},
 "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]},
 "status": {"podIPs": [{"ip": "10.42.0.50"}]}}
`

func TestLabRunJSON(t *testing.T) {
	testenv.RequireRoot(t)
	out, stderr, code := run(t, twoPods, "lab", "run", "-f", "-", "-o", "json", "--layout", "routed")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Probes []map[string]any `json:"probes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	// x/a -> x/b: UDP/53 over IPv4 only. x/b -> x/a: TCP/80 and SCTP/9, IPv4 only.
	want := []string{
		"x/a x/b IPv4 10.42.0.50 UDP 53 <nil>",
		"x/b x/a IPv4 10.42.0.2 TCP 80 <nil>",
		"x/b x/a IPv4 10.42.0.2 SCTP 9 sctp-init",
	}
	if len(got.Probes) != len(want) {
		t.Fatalf("%d probes, want %d:\n%s", len(got.Probes), len(want), out)
	}
	for i, p := range got.Probes {
		line := strings.Join([]string{p["from"].(string), p["to"].(string), p["family"].(string), p["ip"].(string),
			p["protocol"].(string), jsonNumber(p["port"]), str(p["method"])}, " ")
		if line != want[i] {
			t.Errorf("probe %d = %s, want %s", i, line, want[i])
		}
		if p["connected"] != true {
			t.Errorf("probe %d not connected: %v", i, p)
		}
	}
}

// TestLabRunEnforces runs the real enforcer: a policy isolating x/a for
// ingress blocks exactly the probes into x/a, SCTP included, and the kernel
// logged each as dropped by x/a's ingress.
func TestLabRunEnforces(t *testing.T) {
	testenv.RequireRoot(t)
	scenario := twoPods + `---
{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "deny-a", "namespace": "x"},
 "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]}}
`
	out, stderr, code := run(t, scenario, "lab", "run", "-f", "-", "-o", "json", "--timeout", "300ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Probes []struct {
			From, To  string
			Connected bool
			DroppedBy *string `json:"dropped_by"`
		} `json:"probes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(got.Probes) != 3 {
		t.Fatalf("%d probes, want 3:\n%s", len(got.Probes), out)
	}
	for _, p := range got.Probes {
		if want := p.To != "x/a"; p.Connected != want {
			t.Errorf("%s -> %s connected=%v, want %v", p.From, p.To, p.Connected, want)
		}
		switch {
		case p.Connected && p.DroppedBy != nil:
			t.Errorf("%s -> %s connected, yet dropped_by %q", p.From, p.To, *p.DroppedBy)
		case !p.Connected && (p.DroppedBy == nil || *p.DroppedBy != "ingress"):
			t.Errorf("%s -> %s blocked, dropped_by %v, want \"ingress\"", p.From, p.To, p.DroppedBy)
		}
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return "<nil>"
}

func TestLabRunTable(t *testing.T) {
	testenv.RequireRoot(t)
	f := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(f, []byte(twoPods), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "", "lab", "run", "-f", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"TCP/80 IPv4\n-   x/a x/b\nx/a -   -\nx/b .   -\n", "SCTP/9 (sctp-init) IPv4", "3 probes: 3 connected, 0 blocked; 1 by sctp-init."} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestLabRunInvalid(t *testing.T) {
	bad := "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec:\n  containers:\n  - ports: [{containerPort: 80, protocol: ICMP}]\n"
	_, stderr, code := run(t, bad, "lab", "run", "-f", "-")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := `pod x/a (document 1 (line 1)): spec.containers[0].ports[0].protocol: Unsupported value: "ICMP"`; !strings.Contains(stderr, want) {
		t.Errorf("message lacks %q:\n%s", want, stderr)
	}
	if _, stderr, code := run(t, "", "lab", "run", "-f", "/nonexistent.yaml"); code != 2 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, twoPods, "lab", "run", "-f", "-", "-o", "yaml"); code != 2 || !strings.Contains(stderr, "want table or json") {
		t.Errorf("-o yaml: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, twoPods, "lab", "run", "-f", "-", "--layout", "overlay"); code != 2 || !strings.Contains(stderr, `layout "overlay"`) {
		t.Errorf("--layout overlay: exit %d: %s", code, stderr)
	}
}

func TestLabDemo(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	out, stderr, code := run(t, "", "lab", "demo")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{
		"Error: cmp sreg undef",
		"(exit status 3)",
		"Apply NetworkPolicy x/default-deny-ingress",
		"Apply NetworkPolicy x/allow-y-to-a",
		"Apply NetworkPolicy z/limit-egress",
		"TCP/80, TCP/81, UDP/80, UDP/81 over IPv4 and IPv6",
		"table ip filter",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "(exit status 3)") != 2 {
		t.Errorf("iptables -C should fail with status 3 before and after the policies:\n%s", out)
	}
}

// TestMain lets a test run the real command in a child process: with
// KUBE_FENCE_TEST_MAIN set, the test binary is kube-fence.
func TestMain(m *testing.M) {
	if os.Getenv("KUBE_FENCE_TEST_MAIN") == "1" {
		flag.Parse()
		os.Args = append([]string{"kube-fence"}, flag.Args()...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLabInterrupted interrupts the demo once its lab is built: the command
// must end with status 130, saying everything was removed, rather than die
// or hang.
func TestLabInterrupted(t *testing.T) {
	testenv.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "lab", "demo", "--timeout", "5s")
	cmd.Env = append(os.Environ(), "KUBE_FENCE_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait until the lab is built, then interrupt.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "== 2.") {
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("interrupted demo: %v, want exit status 130; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "everything the lab created was removed") {
		t.Errorf("stderr: %s", stderr.String())
	}
}
