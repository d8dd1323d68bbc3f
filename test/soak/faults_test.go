package soak

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

var (
	faultEvery = flag.Duration("soak.fault-every", 10*time.Second, "strike the next fault of -soak.faults this often; 0 never")
	faults     = flag.String("soak.faults", "notify-overrun,kernel-refusal,etcd-restart,api-outage",
		"faults to strike in turn: api-outage (kube-apiserver stopped for -soak.api-outage), etcd-restart, notify-overrun (a flood of foreign nftables notifications overruns the agent's socket: ENOBUFS), kernel-refusal (while the agent restarts, a foreign set under a name its next transaction needs: the kernel refuses the transaction)")
	apiOutage = flag.Duration("soak.api-outage", 5*time.Second, "how long api-outage keeps the API server stopped")
)

// faultRecord is one fault struck and how the agent came back from it.
type faultRecord struct {
	Kind    string `json:"kind"`
	At      string `json:"at"`
	Took    string `json:"took"`              // the fault itself
	CatchUp string `json:"catchUp,omitempty"` // the API server back to the kernel holding a change made then
	Note    string `json:"note,omitempty"`
}

// faultLoop strikes the faults in turn.
func (r *run) faultLoop(ctx context.Context) {
	kinds := strings.Split(*faults, ",")
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(*faultEvery):
		}
		kind := kinds[i%len(kinds)]
		rec := faultRecord{Kind: kind, At: time.Since(start).Round(time.Second).String()}
		var err error
		// An outage runs to the end of its catch-up even when the churn's
		// time is up, so the run ends with the agent caught up.
		switch kind {
		case "api-outage":
			err = r.outage(r.t.Context(), &rec, func() {
				r.cp.StopAPIServer(r.t)
				time.Sleep(*apiOutage)
				r.cp.StartAPIServer(r.t)
			})
		case "etcd-restart":
			err = r.outage(r.t.Context(), &rec, func() { r.cp.RestartEtcd(r.t) })
		case "notify-overrun":
			err = r.overrun(ctx, &rec)
		case "kernel-refusal":
			err = r.refusal(ctx, &rec, i)
		default:
			err = fmt.Errorf("unknown fault %q (want api-outage, etcd-restart, notify-overrun or kernel-refusal)", kind)
		}
		if err != nil {
			if r.t.Context().Err() == nil {
				r.violate("fault %s at %s: %v", kind, rec.At, err)
			}
			return
		}
		r.mu.Lock()
		r.faults = append(r.faults, rec)
		r.mu.Unlock()
	}
}

// outage pauses the churn, runs the fault, and then measures the catch-up:
// from the API server answering again to the kernel holding a change made
// then (a canary pod of its own namespace and address, which no probe
// involves). The probers run throughout: enforcement must not change while
// the API server is away.
func (r *run) outage(ctx context.Context, rec *faultRecord, fault func()) error {
	r.ch.Lock()
	defer r.ch.Unlock()
	r.inOutage.Store(true)
	defer r.inOutage.Store(false)
	begin := time.Now()
	fault()
	back := time.Now()
	rec.Took = back.Sub(begin).Round(time.Millisecond).String()
	// The catch-up: canary changes (a pod of its own namespace and
	// address, which no probe involves, created and deleted in turn; then
	// a policy isolating it, created and deleted in turn), each awaited in
	// the kernel, until three in a row of each kind get there within
	// bound: then the pods' and the policies' informers are back. One
	// informer may resume seconds after another.
	var steadyFrom time.Time
	for _, policy := range []bool{false, true} { // the pods' informer, then the policies'
		steady := 0
		for steady < 3 {
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(back) > 5*time.Minute {
				return fmt.Errorf("changes still take longer than %v to reach the kernel %v after the API server came back", *bound, time.Since(back))
			}
			st, err := r.canary(ctx, policy)
			if err != nil {
				return err
			}
			for st.committed.IsZero() && ctx.Err() == nil && time.Since(back) < 5*time.Minute {
				time.Sleep(20 * time.Millisecond)
				r.h.mu.Lock()
				st.committed = st.self.committed
				r.h.mu.Unlock()
			}
			if st.committed.Sub(st.ack) > *bound {
				steady = 0
				continue
			}
			if steady == 0 {
				steadyFrom = st.committed
			}
			steady++
		}
	}
	rec.CatchUp = steadyFrom.Sub(back).Round(time.Millisecond).String()
	return nil
}

// canaryState is a copy of the last state a canary change made, read under
// the history's lock, and the state itself.
type canaryState struct {
	committed, ack time.Time
	self           *state
}

// canary makes one canary change: with policy, it creates or deletes the
// canary policy (once the canary pod exists); else it creates the canary
// pod, or deletes it when it exists. It retries
// while the API server refuses writes (RBAC caches filling after a
// restart), and returns its last state. Its states are marked catch-up.
func (r *run) canary(ctx context.Context, policy bool) (canaryState, error) {
	s := podSpec{ns: "canary", name: "c0", index: 190}
	r.churn.specs[s.key()] = s // the churn may relabel, delete and create it too
	var err error
	for try := 0; try < 100 && ctx.Err() == nil; try++ {
		r.h.mu.Lock()
		n := len(r.h.states)
		r.h.mu.Unlock()
		if policy && r.churn.exist[s.key()] {
			err = r.toggleCanaryPolicy(ctx)
		} else if r.churn.exist[s.key()] && !policy {
			err = r.churn.write(ctx, "delete canary", func(ctx context.Context) error {
				if err := r.churn.api.CoreV1().Pods(s.ns).Delete(ctx, s.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
					return err
				}
				delete(r.churn.pods, s.key())
				delete(r.churn.exist, s.key())
				return nil
			})
		} else {
			err = r.churn.createPod(ctx, s)
		}
		r.h.mu.Lock()
		for _, st := range r.h.states[n:] {
			st.catchUp = true
		}
		r.h.mu.Unlock()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return canaryState{}, fmt.Errorf("canary change after the fault: %w", err)
	}
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	last := r.h.states[len(r.h.states)-1]
	return canaryState{last.committed, last.ack, last}, nil
}

// overrun floods the node's namespace with nftables notifications from a
// table of another program (250,000 set elements in one transaction,
// several times the agent's 4 MiB socket buffer), so the agent's
// notification socket overflows (ENOBUFS) and the agent must verify its
// table from a full read. It checks that a verification caused by a
// notification followed.
func (r *run) overrun(ctx context.Context, rec *faultRecord) error {
	before, err := r.notificationVerifications(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("add table inet flood\nadd set inet flood s { type ipv4_addr; }\nadd element inet flood s { ")
	for i := range 250_000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "11.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	b.WriteString(" }\n")
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := runIn(r, cmd); err != nil {
		return fmt.Errorf("nft -f (the flood): %v: %s", err, out)
	}
	if out, err := runIn(r, exec.CommandContext(ctx, "nft", "delete", "table", "inet", "flood")); err != nil {
		return fmt.Errorf("nft delete table inet flood: %v: %s", err, out)
	}
	rec.Took = time.Since(begin).Round(time.Millisecond).String()
	for wait := time.Now(); time.Since(wait) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		after, err := r.notificationVerifications(ctx)
		if err == nil && after > before {
			rec.Note = fmt.Sprintf("verified %v after the flood began", time.Since(begin).Round(time.Millisecond))
			return nil
		}
	}
	// A flood that did not overrun the socket (or an agent restarted
	// meanwhile, whose counter began again) proves nothing but breaks
	// nothing: note it.
	rec.Note = "no verification by notification followed (no overrun, or the agent restarted meanwhile)"
	return nil
}

// runIn runs cmd in the node's namespace.
func runIn(r *run, cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := r.lab.Node(nodeName).NS().Run(cmd)
	return out.Bytes(), err
}

// notificationVerifications reads the agent's count of verifications
// caused by nftables notifications.
func (r *run) notificationVerifications(ctx context.Context) (float64, error) {
	r.agentMu.Lock()
	a := r.agent
	r.agentMu.Unlock()
	code, body, err := a.Get(ctx, "/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Errorf("scrape the agent: %d %v", code, err)
	}
	samples, _ := framework.ParseMetrics(body)
	v, _ := framework.Value(samples, "kube_fence_verifications_total", `cause="notification"`)
	return v, nil
}

// toggleCanaryPolicy creates or deletes a policy isolating the canary
// namespace's pods: a change through the policies' informer.
func (r *run) toggleCanaryPolicy(ctx context.Context) error {
	const key = "canary/isolate"
	if old := r.churn.pols[key]; old != nil {
		return r.churn.write(ctx, "delete canary policy", func(ctx context.Context) error {
			if err := r.churn.api.NetworkingV1().NetworkPolicies("canary").Delete(ctx, "isolate", metav1.DeleteOptions{}); err != nil {
				return err
			}
			delete(r.churn.pols, key)
			return nil
		})
	}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "canary", Name: "isolate"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	return r.churn.write(ctx, "create canary policy", func(ctx context.Context) error {
		got, err := r.churn.api.NetworkingV1().NetworkPolicies("canary").Create(ctx, np, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		r.churn.pols[key] = got
		return nil
	})
}
