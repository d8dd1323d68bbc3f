package node

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// ciSubset is what CI runs of the upstream suite: ingress and egress, pod
// and namespace selectors, a named port, UDP, and the API test. Each
// connectivity test probes all 81 pod pairs at least twice; together they
// take a few minutes (docs/testing-e2e.md).
var ciSubset = []string{
	"Netpol NetworkPolicy between server and client should support a 'default-deny-ingress' policy",
	"Netpol NetworkPolicy between server and client should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
	"Netpol NetworkPolicy between server and client should allow egress access on one named port",
	"Netpol [LinuxOnly] NetworkPolicy between server and client using UDP should support a 'default-deny-ingress' policy",
	"Netpol API should support creating NetworkPolicy API operations",
}

func TestNodeNetpolSubset(t *testing.T) {
	root := framework.RepoPath(t, "")
	requireNode(t, root)
	n := &node{t: t, script: filepath.Join(root, "hack/node.sh"), dir: t.TempDir()}
	n.env = append(os.Environ(),
		"KUBE_FENCE_NODE_DIR="+n.dir,
		// Its own cgroups, so a node a developer has up is left alone.
		fmt.Sprintf("KUBE_FENCE_NODE_CGROUP=kube-fence-node-test-%d", os.Getpid()))
	t.Cleanup(n.down)

	start := time.Now()
	if out, err := n.run(15*time.Minute, "up"); err != nil {
		t.Fatalf("hack/node.sh up: %v\n%s", err, tail(out, 40))
	}
	t.Logf("node up in %s", time.Since(start).Round(time.Second))

	t.Run("kube-fence pod", n.checkAgent)

	var args []string
	for _, s := range ciSubset {
		args = append(args, "--ginkgo.focus="+regexp.QuoteMeta(s))
	}
	start = time.Now()
	out, err := n.run(30*time.Minute, append([]string{"e2e"}, args...)...)
	if err != nil {
		t.Fatalf("upstream e2e subset failed: %v\n%s", err, tail(out, 80))
	}
	if want := fmt.Sprintf("Ran %d of ", len(ciSubset)); !strings.Contains(string(out), want) {
		t.Fatalf("upstream e2e ran another number of specs than the %d of the subset (names changed?):\n%s", len(ciSubset), tail(out, 30))
	}
	t.Logf("upstream e2e subset: %d specs passed in %s", len(ciSubset), time.Since(start).Round(time.Second))
}

// checkAgent: the kube-fence pod is Ready through its probes, its process
// holds exactly the DaemonSet's privileges, and its table is in the node's
// network namespace.
func (n *node) checkAgent(t *testing.T) {
	out, err := n.run(time.Minute, "kubectl", "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=kube-fence",
		"-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil || strings.TrimSpace(string(out)) != "True" {
		t.Errorf("kube-fence pod not Ready: %v %q", err, out)
	}
	if out, err := n.run(time.Minute, "exec", "nft", "list", "table", "inet", "kube-fence"); err != nil {
		t.Errorf("table inet kube-fence not in the node's network namespace: %v\n%s", err, out)
	}
	pid := n.agentPID(t)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	const netAdmin = 1 << 12
	for field, want := range map[string]string{
		"CapEff": fmt.Sprintf("%016x", netAdmin), "CapPrm": fmt.Sprintf("%016x", netAdmin),
		"CapBnd": fmt.Sprintf("%016x", netAdmin), "CapInh": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2", "Uid": "0\t0\t0\t0",
	} {
		if got := statusField(status, field); got != want {
			t.Errorf("agent (pid %d) %s = %q, want %q", pid, field, got, want)
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !rootReadOnly(mounts) {
		t.Errorf("agent's / is not mounted read-only:\n%s", mounts)
	}
	self, _ := os.Readlink("/proc/self/ns/pid")
	if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); got == self {
		t.Errorf("agent shares the machine's PID namespace (hostPID)")
	}
}

// agentPID finds `/kube-fence agent` among the processes of this node's
// cgroups.
func (n *node) agentPID(t *testing.T) int {
	t.Helper()
	cg := ""
	for _, e := range n.env {
		if v, ok := strings.CutPrefix(e, "KUBE_FENCE_NODE_CGROUP="); ok {
			cg = v
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || !bytes.HasPrefix(cmd, []byte("/kube-fence\x00agent\x00")) {
			continue
		}
		if c, _ := os.ReadFile(p + "/cgroup"); bytes.Contains(c, []byte("/"+cg+"/")) {
			pid, _ := strconv.Atoi(filepath.Base(p))
			return pid
		}
	}
	t.Fatalf("no /kube-fence agent process in cgroup %s", cg)
	return 0
}

func statusField(status []byte, name string) string {
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// rootReadOnly reports whether the mount at / has the ro option.
func rootReadOnly(mountinfo []byte) bool {
	for _, l := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			return strings.HasPrefix(f[5], "ro,") || f[5] == "ro"
		}
	}
	return false
}

type node struct {
	t      *testing.T
	script string
	dir    string
	env    []string
}

func (n *node) run(timeout time.Duration, args ...string) ([]byte, error) {
	cmd := exec.Command(n.script, args...)
	cmd.Env = n.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("hack/node.sh %s: timed out after %s", args[0], timeout)
	}
}

// down removes the node even when the test failed, and fails the test when
// anything of it is left.
func (n *node) down() {
	if n.t.Failed() {
		for _, l := range []string{"kubelet-node-1", "containerd-node-1", "kube-apiserver"} {
			if b, err := os.ReadFile(filepath.Join(n.dir, l+".log")); err == nil {
				n.t.Logf("%s.log:\n%s", l, tail(b, 30))
			}
		}
	}
	if out, err := n.run(2*time.Minute, "down"); err != nil {
		n.t.Errorf("hack/node.sh down: %v\n%s", err, out)
	}
}

func tail(b []byte, lines int) string {
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// requireNode fails the test, saying what to run, when something the node
// needs is missing.
func requireNode(t *testing.T, root string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: the node runs in network namespaces and cgroups it creates")
	}
	var missing []string
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet", "kubectl", "agnhost", "e2e.test"} {
		if _, err := os.Stat(filepath.Join(root, "_output/bin", b)); err != nil {
			missing = append(missing, "_output/bin/"+b+" (hack/build-kube.sh)")
		}
	}
	for _, p := range []string{"/usr/bin/etcd", "/usr/bin/containerd", "/usr/sbin/runc", "/usr/lib/cni/bridge", "/usr/sbin/nft"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p+" (Debian packages etcd-server containerd runc containernetworking-plugins nftables)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the node needs what hack/ci-deps.sh installs and builds; missing:\n  %s", strings.Join(missing, "\n  "))
	}
}
