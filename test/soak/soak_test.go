package soak

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/testenv"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

var (
	duration  = flag.Duration("soak.duration", time.Minute, "how long the churn runs")
	rate      = flag.Float64("soak.rate", 3, "changes per second (a pod that comes back is two writes)")
	bound     = flag.Duration("soak.bound", 2*time.Second, "the documented bound from an API write to enforcement")
	probers   = flag.Int("soak.probers", 8, "probes in flight at once, without pause")
	killEvery = flag.Duration("soak.kill-every", 20*time.Second, "SIGKILL the agent at a random moment about this often and start it again; 0 never")
	seed      = flag.Uint64("soak.seed", 1, "seed of the changes, probes and faults")
	out       = flag.String("soak.out", "", "write the report to this file as JSON")
)

// TestSoak churns the cluster through the API server while probers run
// without pause, and checks every probe against the states the API server
// acknowledged: a probe that ran from t0 to t1 may have met, in the kernel,
// the state acknowledged last before t0-bound and every later one whose
// write began before t1. When every one of them denies it, it must not
// connect; when every one allows it, it must connect, or connect on retries
// within bound of its first failure. Probes whose window mixes verdicts
// prove nothing and are counted apart.
func TestSoak(t *testing.T) {
	testenv.RequireRoot(t)
	r := newRun(t)
	ctx, cancel := context.WithTimeout(t.Context(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	// The kernel is watched until every other part ended: an outage's
	// catch-up may run past the churn's time and needs it.
	kctx, stopWatch := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() { defer close(watched); r.watchKernel(kctx) }()
	run(r.churnLoop)
	run(r.sampleAgent)
	if *killEvery > 0 {
		run(r.killLoop)
	}
	if *faultEvery > 0 && *faults != "" {
		run(r.faultLoop)
	}
	for i := range *probers {
		run(func(ctx context.Context) { r.probeLoop(ctx, uint64(i)) })
	}
	wg.Wait()
	r.settle()
	stopWatch()
	<-watched
	r.report()
}

type run struct {
	t     *testing.T
	cp    *framework.ControlPlane
	lab   *lab.Lab
	node  *cluster.Node
	opts  framework.AgentOptions
	h     *history
	churn *churn
	ch    sync.Mutex // guards churn against the final read

	agentMu  sync.Mutex
	agent    *framework.Agent
	started  int             // agents started so far
	restarts []time.Duration // start to ready of each restarted agent
	killedAt []string        // when, from the start of the churn

	inOutage  atomic.Bool // the API server or etcd is away: no agent restart now
	restartMu sync.Mutex  // one agent kill and start at a time

	mu         sync.Mutex
	faults     []faultRecord
	probes     int
	determined int // probes whose window agrees on the verdict
	retried    int // allowed probes that failed at first and connected within bound
	violations []string
	samples    []sample
}

type sample struct {
	At    time.Duration `json:"at"`
	CPU   float64       `json:"cpuSeconds"`
	RSS   float64       `json:"rssBytes"`
	Heap  float64       `json:"heapBytes"`
	Agent int           `json:"agent"` // how many restarts before
}

// newRun builds the node and pods in the lab, the control plane in the
// node's namespace, the objects, and the agent as the DaemonSet runs it.
func newRun(t *testing.T) *run {
	snap := &cluster.Snapshot{Nodes: []*cluster.Node{{Name: nodeName, PodCIDRs: []netip.Prefix{
		netip.MustParsePrefix("10.42.0.0/24"), netip.MustParsePrefix("fd00:10:42::/64")}}}}
	specs := map[string]podSpec{}
	for _, s := range allPods() {
		specs[s.key()] = s
		p := &cluster.Pod{Namespace: s.ns, Name: s.name, NodeName: nodeName, Phase: corev1.PodRunning}
		for _, ip := range s.ips() {
			p.IPs = append(p.IPs, netip.MustParseAddr(ip))
		}
		for _, port := range podPorts {
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: port.Name, Port: port.ContainerPort, Protocol: port.Protocol})
		}
		snap.Pods = append(snap.Pods, p)
	}
	l, err := lab.New(t.Context(), snap, lab.Options{ProbeTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	nodeNS := l.Node(nodeName).NS()
	cp := framework.StartWithOptions(t, framework.Options{NS: nodeNS})
	var addrs []string
	for _, a := range l.Snapshot().Nodes[0].Addresses {
		addrs = append(addrs, a.String())
	}
	apiNode := cp.CreateNode(t, nodeName, []string{"10.42.0.0/24", "fd00:10:42::/64"}, addrs...)
	node, err := cluster.NodeFromAPI(apiNode)
	if err != nil {
		t.Fatal(err)
	}
	c := &churn{api: cp.Admin, rnd: rand.New(rand.NewPCG(*seed, 1)), h: &history{}, node: node,
		pods: map[string]*cluster.Pod{}, exist: map[string]bool{}, pols: map[string]*networkingv1.NetworkPolicy{}, specs: specs}
	for _, ns := range append(slices.Clone(namespaces), "canary") {
		c.nss = append(c.nss, cluster.NamespaceFromAPI(cp.CreateNamespace(t, ns, map[string]string{"ns": ns})))
	}
	for _, s := range allPods() {
		cp.CreatePod(t, framework.Pod(s.ns, s.name, nodeName, map[string]string{"role": c.pick(roles)}, podPorts...))
		got, err := runPod(t.Context(), cp.Admin, s)
		if err != nil {
			t.Fatal(err)
		}
		c.exist[s.key()] = true
		if err := c.storePod(got); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	c.h.add(newState("initial objects", now, now, snapshotOf(c.node, c.nss, c.pods, c.pols)))

	r := &run{t: t, cp: cp, lab: l, node: node, h: c.h, churn: c}
	r.opts = framework.AgentOptionsFromDaemonSet(t, framework.AgentDaemonSet(t), nodeName)
	r.opts.Kubeconfig = cp.AgentKubeconfig(t)
	r.startAgent("agent-0")
	return r
}

func (r *run) startAgent(name string) time.Duration {
	opts := r.opts
	opts.Name, opts.HealthAddr, opts.MetricsAddr, opts.Owner = name, "127.0.0.1:9943", "127.0.0.1:9942", r.t
	a := r.cp.StartAgent(r.t, opts)
	took := a.WaitReady(r.t, 60*time.Second)
	r.agentMu.Lock()
	r.agent = a
	r.started++
	r.agentMu.Unlock()
	return took
}

func (r *run) violate(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violations = append(r.violations, fmt.Sprintf(format, args...))
}

// churnLoop makes one change every 1/rate seconds. A failed write (the API
// server may be away) is counted and the loop goes on.
func (r *run) churnLoop(ctx context.Context) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.ch.Lock()
		err := r.churn.step(ctx)
		r.ch.Unlock()
		if err != nil && ctx.Err() == nil {
			r.t.Logf("write failed: %v", err)
		}
	}
}

// watchKernel reads the node's table every 20ms and marks the states it
// holds as committed: the API-write-to-kernel latency, at that resolution.
func (r *run) watchKernel(ctx context.Context) {
	reader, err := kernel.Open(kernel.Options{NetNSFD: r.lab.Node(nodeName).NS().FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		r.violate("open a reader of the table: %v", err)
		return
	}
	defer reader.Close()
	for ctx.Err() == nil {
		if have, err := reader.Read(); err == nil && have != nil {
			r.h.markCommitted(have, time.Now())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sampleAgent records the agent's CPU time and memory every few seconds.
func (r *run) sampleAgent(ctx context.Context) {
	start := time.Now()
	tick := time.NewTicker(max(*duration/30, time.Second))
	defer tick.Stop()
	for {
		r.agentMu.Lock()
		a, n := r.agent, r.started-1
		r.agentMu.Unlock()
		cpu, err1 := a.Metric(ctx, "process_cpu_seconds_total")
		rss, err2 := a.Metric(ctx, "process_resident_memory_bytes")
		heap, err3 := a.Metric(ctx, "go_memstats_heap_inuse_bytes")
		if err1 == nil && err2 == nil && err3 == nil {
			r.mu.Lock()
			r.samples = append(r.samples, sample{At: time.Since(start).Round(time.Second), CPU: cpu, RSS: rss, Heap: heap, Agent: n})
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// killLoop kills the agent with SIGKILL at a random moment of every period
// (in the middle of a transaction or not: changes keep coming) and starts a
// new one at once, as the DaemonSet's kubelet would.
func (r *run) killLoop(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(*seed, 3))
	r.h.mu.Lock()
	begin := r.h.states[0].ack
	r.h.mu.Unlock()
	for i := 1; ; i++ {
		wait := *killEvery/2 + time.Duration(rnd.Int64N(int64(*killEvery)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if r.inOutage.Load() {
			continue // a new agent could not list the cluster until it is back
		}
		r.restartMu.Lock()
		if err := r.killAgent(ctx); err != nil {
			r.restartMu.Unlock()
			r.violate("%v", err)
			return
		}
		start := time.Now()
		r.agentMu.Lock()
		r.killedAt = append(r.killedAt, time.Since(begin).Round(100*time.Millisecond).String())
		r.agentMu.Unlock()
		r.startAgent(fmt.Sprintf("agent-%d", i))
		r.agentMu.Lock()
		r.restarts = append(r.restarts, time.Since(start))
		r.agentMu.Unlock()
		r.restartMu.Unlock()
	}
}

// killAgent kills the agent with SIGKILL and waits until its ports close.
func (r *run) killAgent(ctx context.Context) error {
	r.agentMu.Lock()
	a := r.agent
	r.agentMu.Unlock()
	if err := a.Kill(); err != nil {
		return fmt.Errorf("kill the agent: %w", err)
	}
	// The agent is PID 1 of its own PID namespace, below the unshare
	// that Kill reaps: its sockets close a moment later. A new agent
	// started before would find its ports taken and exit.
	for wait := time.Now(); time.Since(wait) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		if _, _, err := a.Get(ctx, "/healthz"); errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
	}
	return nil
}

// probeLoop probes random pairs without pause and checks each result.
func (r *run) probeLoop(ctx context.Context, id uint64) {
	rnd := rand.New(rand.NewPCG(*seed, 100+id))
	targets := r.lab.Targets()
	for ctx.Err() == nil {
		tg := targets[rnd.IntN(len(targets))]
		t0 := time.Now()
		connected, ok := r.probe(ctx, tg)
		if !ok {
			return
		}
		t1 := time.Now()
		allAllow, allDeny := verdicts(r.h.window(t0, t1, *bound), tg)
		r.mu.Lock()
		r.probes++
		if allAllow || allDeny {
			r.determined++
		}
		r.mu.Unlock()
		switch {
		case allDeny && connected:
			r.violate("%s -> %s %s/%d %s connected at %s, although every state since %v before denies it",
				tg.From, tg.To, tg.Protocol, tg.Port, tg.IP, t0.Format("15:04:05.000"), *bound)
		case allAllow && !connected:
			r.retryAllowed(ctx, tg, t0)
		}
	}
}

func (r *run) probe(ctx context.Context, tg lab.Target) (connected, ok bool) {
	res, err := r.lab.ProbeTargets(ctx, []lab.Target{tg})
	if err != nil {
		if ctx.Err() == nil {
			r.violate("probe %v: %v", tg, err)
		}
		return false, false
	}
	return res[0].Connected, true
}

// retryAllowed probes a failed allowed target again until it connects;
// failing for longer than bound while every state allows it is a violation.
func (r *run) retryAllowed(ctx context.Context, tg lab.Target, first time.Time) {
	for ctx.Err() == nil {
		t0 := time.Now()
		connected, ok := r.probe(ctx, tg)
		if !ok {
			return
		}
		allAllow, _ := verdicts(r.h.window(first, time.Now(), *bound), tg)
		switch {
		case !allAllow:
			return // the state changed meanwhile: nothing to prove
		case connected:
			r.mu.Lock()
			r.retried++
			r.mu.Unlock()
			return
		case time.Since(first) > *bound:
			r.violate("%s -> %s %s/%d %s allowed by every state, yet failing since %s (%v)",
				tg.From, tg.To, tg.Protocol, tg.Port, tg.IP, first.Format("15:04:05.000"), t0.Sub(first).Round(time.Millisecond))
			return
		}
	}
}

// settle waits until the kernel holds the last state, within bound of the
// end of the churn.
func (r *run) settle() {
	last := r.h.last()
	deadline := time.Now().Add(*bound)
	for time.Now().Before(deadline) {
		r.h.mu.Lock()
		done := !last.committed.IsZero()
		r.h.mu.Unlock()
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One more read, in case the watcher's last poll came just before.
	reader, err := kernel.Open(kernel.Options{NetNSFD: r.lab.Node(nodeName).NS().FD(), Ownership: kernel.OwnershipOff})
	if err == nil {
		defer reader.Close()
		if have, err := reader.Read(); err == nil && r.h.markCommitted(have, time.Now()) > 0 {
			return
		}
	}
	r.h.mu.Lock()
	done := !last.committed.IsZero()
	r.h.mu.Unlock()
	if !done {
		r.violate("the kernel does not hold the last state (%s) %v after the churn ended", last.what, *bound)
	}
}

// Report is what a run measured; -soak.out writes it as JSON.
type Report struct {
	Duration   string        `json:"duration"`
	Rate       float64       `json:"ratePerSecond"`
	Bound      string        `json:"bound"`
	Writes     int           `json:"writes"`
	Failed     int           `json:"failedWrites"`
	Probes     int           `json:"probes"`
	Determined int           `json:"determinedProbes"`
	Retried    int           `json:"allowedProbesRetried"`
	Violations int           `json:"violations"`
	Kills      int           `json:"agentKills"`
	Restart    []string      `json:"agentStartToReady"`
	LatencyP50 string        `json:"writeToKernelP50"`
	LatencyP99 string        `json:"writeToKernelP99"`
	LatencyMax string        `json:"writeToKernelMax"`
	Pending    int           `json:"statesNeverSeenAlone"`
	Slowest    []string      `json:"slowestStates"`
	Faults     []faultRecord `json:"faults"`
	Samples    []sample      `json:"agentSamples"`
}

func (r *run) report() {
	t := r.t
	lat, pending := r.h.latencies()
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ch.Lock()
	defer r.ch.Unlock()
	rep := Report{Duration: duration.String(), Rate: *rate, Bound: bound.String(), Writes: r.churn.writes, Failed: r.churn.failed,
		Probes: r.probes, Determined: r.determined, Retried: r.retried, Violations: len(r.violations), Kills: len(r.restarts),
		LatencyP50: q(0.5).String(), LatencyP99: q(0.99).String(), Pending: pending, Samples: r.samples, Faults: r.faults, Slowest: r.h.slowest(10)}
	if len(lat) > 0 {
		rep.LatencyMax = lat[len(lat)-1].String()
	}
	for _, d := range r.restarts {
		rep.Restart = append(rep.Restart, d.Round(time.Millisecond).String())
	}
	t.Logf("%d writes (%d failed) in %s; %d probes, %d with one verdict over their window, %d allowed ones retried; %d violations",
		rep.Writes, rep.Failed, rep.Duration, rep.Probes, rep.Determined, rep.Retried, rep.Violations)
	t.Logf("API write to kernel: p50 %s, p99 %s, max %s over %d states (%d replaced before the kernel held them alone); bound %s",
		rep.LatencyP50, rep.LatencyP99, rep.LatencyMax, len(lat), pending, rep.Bound)
	t.Logf("slowest states: %s", strings.Join(rep.Slowest[:min(5, len(rep.Slowest))], "; "))
	t.Logf("agent killed %d times (at %s); start to ready: %s", rep.Kills, strings.Join(r.killedAt, " "), strings.Join(rep.Restart, " "))
	for _, f := range r.faults {
		t.Logf("fault %s at %s: took %s, catch-up %s %s", f.Kind, f.At, f.Took, f.CatchUp, f.Note)
	}
	for i, s := range r.samples {
		if i%max(1, len(r.samples)/10) != 0 && i != len(r.samples)-1 {
			continue // every sample is in -soak.out
		}
		t.Logf("agent at %v (restart %d): cpu %.2fs, rss %.1f MiB, heap %.1f MiB", s.At, s.Agent, s.CPU, s.RSS/(1<<20), s.Heap/(1<<20))
	}
	if *out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			t.Error(err)
		}
	}
	// Every failure of the harness or a fault, then the first probes.
	probes := 0
	for _, v := range r.violations {
		if !strings.Contains(v, " -> ") {
			t.Error(v)
		} else if probes++; probes <= 30 {
			t.Error(v)
		}
	}
	if r.determined == 0 {
		t.Error("no probe had one verdict over its window: the run proved nothing")
	}
}
