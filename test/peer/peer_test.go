//go:build peer

package peer

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/policy/synth"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

var (
	sizes   = flag.String("peer.sizes", "100,1000", "comma-separated cluster sizes in pods (policies: a tenth; up to 110 on the measured node)")
	rounds  = flag.Int("peer.rounds", 3, "rounds per size; each round runs every controller once, the order alternating")
	routers = flag.String("peer.kube-router", "", "comma-separated kube-router binaries to measure (hack/build-kube-router.sh installs _output/bin/kube-router-<version>)")
	limit   = flag.Duration("peer.limit", 10*time.Minute, "how long a controller may take to enforce a size before it is reported as not finishing it")
	out     = flag.String("peer.out", "", "write the raw numbers to this file as JSON")
)

// TestPeer runs kube-fence and each kube-router binary against the same
// synthetic cluster, in alternating order, -peer.rounds times per size.
// `make bench-peer` runs it; docs/benchmarks-peer.md has its results.
func TestPeer(t *testing.T) {
	if *routers == "" {
		t.Fatal("no kube-router to measure: pass -peer.kube-router (make bench-peer builds it with hack/build-kube-router.sh and passes it)")
	}
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 {
			t.Fatalf("-peer.sizes: %q is not a size of at least 10 pods", f)
		}
		ns = append(ns, n)
	}
	report := Report{Date: time.Now().UTC().Format(time.RFC3339), Kernel: command(t, "uname", "-r"),
		Iptables: command(t, "iptables", "--version"), Rounds: *rounds}
	for _, n := range ns {
		t.Run(fmt.Sprintf("pods=%d", n), func(t *testing.T) {
			report.Sizes = append(report.Sizes, measureSize(t, n))
		})
	}
	t.Logf("medians of %d rounds:\n%s", *rounds, report.Table())
	if *out != "" {
		b, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// measureSize creates a cluster of n pods through a fresh control plane and
// runs every controller -peer.rounds times against it.
func measureSize(t *testing.T, n int) Size {
	cfg := synth.Config{Pods: n, Policies: n / 10, Nodes: max(n/100, 2), Namespaces: max(n/100, 1), PodsOnNode: min(110, n), Seed: 1}
	s := synth.Generate(cfg)
	cp := framework.Start(t)
	c := newCluster(t, cp, s)
	begin := time.Now()
	c.create(t)
	t.Logf("created %d namespaces, %d pods and %d policies through the API in %s; %d pods enforceable on %s",
		len(s.Namespaces), len(s.Pods), len(s.Policies), time.Since(begin).Round(time.Second), c.localPods, c.node)

	ctrls := []controller{newKubeFence(t, cp, c)}
	for _, bin := range strings.Split(*routers, ",") {
		ctrls = append(ctrls, newKubeRouter(t, cp, c, bin))
	}
	size := Size{Pods: cfg.Pods, Policies: cfg.Policies, LocalPods: c.localPods}
	given := map[string]bool{} // controllers that did not finish this size
	host := byte(0)            // the last byte of each new pod's address
	for r := range *rounds {
		order := ctrls
		if r%2 == 1 { // alternate who goes first: a warm page cache or a busy minute favours neither
			order = reversed(ctrls)
		}
		for _, ctl := range order {
			if given[ctl.name()] {
				continue
			}
			host++
			run := measure(t, cp, c, ctl, r, host)
			t.Logf("round %d %s: %s", r, ctl.name(), run)
			given[ctl.name()] = run.NotFinished != ""
			size.Runs = append(size.Runs, run)
		}
	}
	return size
}

func reversed(cs []controller) []controller {
	out := make([]controller, 0, len(cs))
	for i := len(cs) - 1; i >= 0; i-- {
		out = append(out, cs[i])
	}
	return out
}

// command runs a program on the host for the report's header (versions).
func command(t *testing.T, name string, args ...string) string {
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(b))
}

// routerVersion is the version hack/build-kube-router.sh put in the
// binary's name.
func routerVersion(bin string) string {
	return strings.TrimPrefix(filepath.Base(bin), "kube-router-")
}
