package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	"k8s.io/client-go/kubernetes"
	cnpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/kube-fence/kube-fence/internal/conntrack"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Run runs the agent until ctx ends. It returns an error only for what stops
// it from starting (bad configuration, no netlink, a port in use); after the
// first sync, failures become the Degraded state and never end the process.
// cnps reads ClusterNetworkPolicies, when the API server serves them.
func Run(ctx context.Context, cfg Config, client kubernetes.Interface, cnps cnpclient.Interface, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	pipe, err := enforce.Open(cfg.NodeName, policy.Options{DefaultDenyUnknown: cfg.DefaultDenyUnknown},
		kernel.Options{NetNSFD: cfg.NetNSFD, Ownership: cfg.Ownership})
	if err != nil {
		return err
	}
	defer pipe.Close()
	pipe.SetDropLog(cfg.DropLog)
	if cfg.ExistingConnections == enforce.ExistingCut {
		cutter, err := enforce.OpenCutter(cfg.NetNSFD)
		if err != nil {
			return fmt.Errorf("--existing-connections=cut: %w", err)
		}
		pipe.CutConnections(cutter)
	}

	a := newAgent(cfg, log, pipe, newEventSink(client, cfg.NodeName))
	pipe.OnCut(a.reportCut)
	defer a.events.shutdown()
	if !cfg.DropLog.Off {
		// Before the first sync, so no record of the new table is missed.
		a.denied.run(ctx, cfg)
		a.metrics.registry.MustRegister(newDropCollector(cfg.NetNSFD, a.denied.lost))
	}
	if err := serve(ctx, log, cfg, a.status, a.metrics); err != nil {
		return err
	}
	go watchNftables(ctx, log, cfg.NetNSFD, pipe.PortID(), a.notify)

	// A table left by the previous agent keeps enforcing the last known
	// state while the API server is listed.
	log.Info("starting", "node", cfg.NodeName, "ownership", pipe.OwnershipState(), "defaultDenyUnknown", cfg.DefaultDenyUnknown,
		"logDenied", !cfg.DropLog.Off,
		"existingConnections", cfg.ExistingConnections)
	a.status.setWaiting(true)
	watch := newCNPWatch(log, client.Discovery(), cnps, a.store, cfg.CRDPollInterval)
	err = startInformers(ctx, client, a.store, watch)
	a.status.setWaiting(false)
	if err != nil {
		if ctx.Err() != nil {
			return a.stop()
		}
		return err
	}
	log.Info("cluster state listed; enforcing")
	a.loop(ctx)
	return a.stop()
}

type agent struct {
	cfg     Config
	log     *slog.Logger
	pipe    *enforce.Pipeline // owned by the writer loop
	store   *store
	metrics *metrics
	status  *status
	events  *eventSink
	notify  chan struct{} // nftables changed by another process
	denied  *deniedLog

	degraded string // the reason, while the kernel's table is not the desired one
	failures int    // consecutive failed syncs, for the backoff
}

func newAgent(cfg Config, log *slog.Logger, pipe *enforce.Pipeline, events *eventSink) *agent {
	a := &agent{
		cfg:     cfg,
		log:     log,
		pipe:    pipe,
		store:   newStore(log),
		metrics: newMetrics(),
		status:  &status{heartbeat: time.Now(), stale: max(3*cfg.VerifyInterval, time.Minute)},
		events:  events,
		notify:  make(chan struct{}, 1),
	}
	a.denied = &deniedLog{log: log.With("component", "denied"), podByIP: a.store.podByIP, metrics: a.metrics}
	pipe.OnCommit(func(enforced, audit *plan.Plan) {
		a.denied.plan.Store(enforced)
		a.denied.audit.Store(audit)
	})
	return a
}

// loop is the single writer: the only goroutine that touches the kernel.
func (a *agent) loop(ctx context.Context) {
	verify := time.NewTicker(a.cfg.VerifyInterval)
	defer verify.Stop()
	var (
		due        = time.NewTimer(0) // first sync at once
		pending    = true
		firstEvent time.Time
		retry      <-chan time.Time
	)
	defer due.Stop()
	schedule := func() {
		now := time.Now()
		if !pending {
			pending, firstEvent = true, now
		}
		wait := min(a.cfg.Debounce, time.Until(firstEvent.Add(a.cfg.MaxDelay)))
		due.Reset(max(wait, 0))
	}
	for {
		a.status.beat()
		select {
		case <-ctx.Done():
			return
		case <-a.store.changed:
			schedule()
		case <-due.C:
			if pending {
				pending = false
				if !a.sync() {
					retry = time.After(a.backoff())
				}
			}
		case <-retry:
			retry = nil
			if !a.sync() {
				retry = time.After(a.backoff())
			}
		case <-a.notify:
			if !a.verify(causeNotification) && a.degraded != "" && retry == nil {
				retry = time.After(a.backoff()) // a failed repair is retried like a failed sync
			}
		case <-verify.C:
			if !a.verify(causeInterval) && a.degraded != "" && retry == nil {
				retry = time.After(a.backoff())
			}
		}
	}
}

// backoff grows from 100ms to 30s with consecutive failures.
func (a *agent) backoff() time.Duration {
	d := 100 * time.Millisecond << min(a.failures, 9)
	return min(d, 30*time.Second)
}

// sync brings the kernel's table to the cluster as the store holds it now.
// The pipeline compiles, renders and sends only what changed since the last
// sync and reads back only what the transaction changed: a one-pod change
// costs milliseconds however big the cluster.
func (a *agent) sync() bool {
	start := time.Now()
	policies, clusterPolicies := a.store.applyTo(a.pipe)
	s, err := a.pipe.Sync()
	a.reportProblems(policies, clusterPolicies, s.Plan)
	res := s.Result
	if res.Messages > 0 {
		a.metrics.applyDuration.Observe(res.Duration.Seconds())
	}
	if enforce.StageOf(err) == enforce.StageApply {
		a.fail(err)
		return false
	}
	if res.Messages > 0 {
		a.metrics.transactions.Inc()
		a.metrics.changesApplied.Add(float64(len(res.Delta.Differences)))
		added, deleted := res.Delta.Elements()
		a.log.Info("table updated", "changes", len(res.Delta.Differences), "elementsAdded", added, "elementsDeleted", deleted,
			"messages", res.Messages, "bytes", res.Bytes, "rebuilt", res.Rebuilt, "fullCompile", s.Update.Full,
			"took", time.Since(start))
		a.log.Debug("table changes", "differences", res.Delta.Differences)
		if s.First {
			a.metrics.repairs.WithLabelValues(causeStartup).Inc()
		}
		// The pipeline read back what it just committed; the rest of the
		// table is verified on notifications and on the timer.
		a.metrics.verifications.WithLabelValues(causeAfterApply).Inc()
		if !a.settle(causeAfterApply, s.Check, err) {
			return false
		}
	}
	a.metrics.syncDuration.Observe(time.Since(start).Seconds())
	a.succeed(s.Plan, s.Table)
	if s.Update.Full {
		// A full compile and the transaction after it allocate several
		// times what the agent keeps; give that back to the system now
		// rather than holding it as heap the garbage collector may
		// reuse. Full compiles are rare: startup and large bursts.
		debug.FreeOSMemory()
	}
	return true
}

// verify reads the whole table back and repairs any difference. It reports
// whether the kernel now holds the desired table.
func (a *agent) verify(cause string) bool {
	if a.pipe.Desired() == nil {
		return false // nothing synced yet; the pending sync will write it
	}
	a.metrics.verifications.WithLabelValues(cause).Inc()
	chk, err := a.pipe.Verify()
	return a.settle(cause, chk, err)
}

// settle accounts for a read back and the repair it needed, and reports
// whether the kernel now holds the desired table.
func (a *agent) settle(cause string, chk *enforce.Check, err error) bool {
	if chk != nil && len(chk.Differences) > 0 {
		a.log.Warn("table differed from the desired one", "cause", cause, "differences", len(chk.Differences),
			"first", strings.Join(chk.Differences[:min(5, len(chk.Differences))], "; "))
	}
	if err != nil {
		a.fail(err)
		return false
	}
	if res := chk.Repair; res != nil {
		a.metrics.repairs.WithLabelValues(cause).Inc()
		a.metrics.transactions.Inc()
		a.log.Info("table repaired", "cause", cause, "messages", res.Messages, "rebuilt", res.Rebuilt, "took", res.Duration)
		if a.degraded != "" {
			a.recover()
		}
	}
	return true
}

// fail enters (or stays in) the degraded state after a failed step of the
// pipeline.
func (a *agent) fail(err error) {
	a.failures++
	a.metrics.applyErrors.Inc()
	a.metrics.degraded.Set(1)
	reason := err.Error()
	if errors.Is(err, kernel.ErrOwnedElsewhere) {
		reason += " (is another kube-fence agent running on this node?)"
	}
	a.log.Error("enforcement degraded; the last committed table stays in force", "reason", reason, "retryIn", a.backoff())
	if a.degraded == "" {
		a.events.node(a.store, true, reason)
	}
	a.degraded = reason
	a.status.set(false, reason)
}

func (a *agent) recover() {
	a.log.Info("enforcement recovered", "after", a.degraded)
	a.events.node(a.store, false, "")
	a.degraded = ""
	a.failures = 0
	a.metrics.degraded.Set(0)
	a.status.set(true, "")
}

func (a *agent) succeed(pl *plan.Plan, want *nft.Table) {
	if a.degraded != "" {
		a.recover()
	}
	a.failures = 0
	a.status.set(true, "")
	a.metrics.lastSync.SetToCurrentTime()
	a.metrics.pods.Set(float64(len(pl.Pods)))
	chains, rules, sets, elems := want.Counts()
	a.metrics.tableObjects.WithLabelValues("chains").Set(float64(chains))
	a.metrics.tableObjects.WithLabelValues("rules").Set(float64(rules))
	a.metrics.tableObjects.WithLabelValues("sets").Set(float64(sets))
	a.metrics.tableObjects.WithLabelValues("elements").Set(float64(elems))
}

// stop ends the agent. By default the table stays: with persist it keeps
// protecting the pods until the next agent adopts it.
func (a *agent) stop() error {
	if !a.cfg.CleanupOnExit {
		a.log.Info("stopping; the table stays in force", "ownership", a.pipe.OwnershipState())
		return nil
	}
	a.log.Info("stopping; removing the table (--cleanup-on-exit)")
	return a.pipe.DeleteTable()
}

// reportCut accounts for a cut of denied connections after a commit; the
// pipeline's cut worker calls it on its own goroutine, so it only touches
// metrics and the log. A failed cut leaves the committed table in force
// (new connections are judged by it) and the worker retries it, so it does
// not degrade the agent; what it did delete counts.
func (a *agent) reportCut(res *conntrack.Result, err error) {
	if err != nil {
		a.metrics.cutErrors.Inc()
		a.log.Error("cut of denied connections failed; the table is in force, retrying the cut", "reason", err.Error())
	}
	if res == nil {
		return
	}
	a.metrics.cutDuration.Observe(res.Took.Seconds())
	a.metrics.cutEntries.Add(float64(len(res.Cut)))
	if len(res.Cut) == 0 && res.Gone == 0 {
		a.log.Debug("no connection to cut", "entries", res.Entries, "judged", res.Judged, "spared", res.Spared, "took", res.Took)
		return
	}
	a.log.Info("connections cut", "cut", len(res.Cut), "gone", res.Gone, "spared", res.Spared, "entries", res.Entries,
		"judged", res.Judged, "took", res.Took)
	a.log.Debug("connections cut", "flows", res.Cut)
}
