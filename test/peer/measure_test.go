//go:build peer

package peer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// measure runs ctl once from an empty kernel: start it, wait until it
// enforces the cluster, add a policy and a pod, read its memory, stop it
// and take the policy and pod out again.
func measure(t *testing.T, cp *framework.ControlPlane, c *testCluster, ctl controller, round int, host byte) Run {
	run := Run{Controller: ctl.name(), Round: round}
	resetKernel(t, cp)
	ctx := t.Context()
	begin := time.Now()
	r := ctl.start(t)
	defer func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop %s: %v", ctl.name(), err)
		}
	}()
	if err := poll(ctx, *limit, func() (bool, error) { return r.enforcing(ctx) }); err != nil {
		if errors.Is(err, errExited) {
			t.Fatalf("%s: %v", ctl.name(), err)
		}
		run.NotFinished = fmt.Sprintf("not enforcing the %d local pods within %s: %v", c.localPods, *limit, err)
		return run
	}
	run.Startup = ms(time.Since(begin))
	if err := r.mark(ctx); err != nil {
		t.Fatalf("%s: %v", ctl.name(), err)
	}

	suffix := strings.NewReplacer(" ", "-", ".", "-").Replace(fmt.Sprintf("r%d-%s", round, ctl.name()))
	pol := c.newPolicy("peer-" + suffix)
	if _, err := c.client.NetworkingV1().NetworkPolicies(pol.Namespace).Create(ctx, pol, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if err := poll(ctx, 2*time.Minute, func() (bool, error) { return r.hasPolicy(ctx, pol.Name) }); err != nil {
		t.Fatalf("%s: policy %s/%s not enforced: %v", ctl.name(), pol.Namespace, pol.Name, err)
	}
	run.Policy = ms(time.Since(sent))

	// Each change is timed from a quiet controller: kube-fence reads back
	// what it committed after each transaction, and a pod arriving during
	// the read back of the policy's 1-2k elements would wait for it.
	time.Sleep(quiet)
	pod := c.newPod("peer-pod-"+suffix, host)
	if err := c.createPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	sent = time.Now() // the status update giving it an address is the change that matters
	if err := poll(ctx, 2*time.Minute, func() (bool, error) { return r.hasPod(ctx, pod.Name) }); err != nil {
		t.Fatalf("%s: pod %s not enforced: %v", ctl.name(), pod.Key(), err)
	}
	run.Pod = ms(time.Since(sent))

	var err error
	if run.FullSync, err = r.fullSync(ctx); err != nil {
		t.Fatalf("%s: %v", ctl.name(), err)
	}
	if run.RSS, err = procStatus(r.pid(), "VmRSS"); err != nil {
		t.Fatal(err)
	}
	if run.Peak, err = procStatus(r.pid(), "VmHWM"); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Errorf("stop %s: %v", ctl.name(), err)
	}
	zero := int64(0)
	if err := c.client.NetworkingV1().NetworkPolicies(pol.Namespace).Delete(ctx, pol.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	return run
}

// resetKernel empties the namespace's firewall: nftables (kube-fence's
// table and the iptables-nft tables kube-router writes through) and the
// ipsets kube-router keeps, so each run starts from the same kernel.
func resetKernel(t *testing.T, cp *framework.ControlPlane) {
	for _, argv := range [][]string{{"nft", "flush", "ruleset"}, {"ipset", "destroy"}} {
		if b, err := cp.NS.Command(argv[0], argv[1:]...); err != nil {
			t.Fatalf("%s in the node's namespace: %v: %s", strings.Join(argv, " "), err, b)
		}
	}
}

// pollEvery is the resolution of every time measured here. Looking
// costs the controllers CPU (a /metrics scrape, an iptables-save that takes
// the nftables lock kube-router's iptables-restore needs), so not
// continuously.
const pollEvery = 10 * time.Millisecond

// quiet is the pause between the policy enforced and the pod created.
const quiet = 2 * time.Second

// errExited is what a check returns once the controller has exited: no
// point polling on.
var errExited = errors.New("the controller exited")

// poll calls check until it reports true, timeout passes or ctx ends; a
// check's error is kept for the timeout's message, not fatal, unless the
// controller exited.
func poll(ctx context.Context, timeout time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := check()
		if ok {
			return nil
		}
		if errors.Is(err, errExited) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	return fmt.Errorf("timed out after %s (last error: %v)", timeout, last)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
