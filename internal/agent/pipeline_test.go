package agent

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/tools/record"

	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// fakeAgent is an agent over the in-memory nftables, with a store holding a
// small synthetic cluster and a recorder for its events. No root needed.
func fakeAgent(t *testing.T) (*agent, *nfttest.Conn, *record.FakeRecorder) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := nfttest.New()
	node := synth.NodeName(0)
	cfg := Defaults()
	cfg.NodeName = node
	rec := record.NewFakeRecorder(100)
	a := newAgent(cfg, log, enforce.New(node, policy.Options{DefaultDenyUnknown: true}, conn),
		&eventSink{nodeName: node, recorder: rec, reported: map[problemKey]string{}})
	s := synth.Generate(synth.Config{Pods: 200, Policies: 40, Nodes: 3, Namespaces: 5, PodsOnNode: 30, Seed: 2})
	st := a.store
	for _, ns := range s.Namespaces {
		st.namespaces[ns.Name], st.dirty.namespaces[ns.Name] = ns, struct{}{}
	}
	for _, p := range s.Pods {
		st.pods[p.Key()], st.dirty.pods[p.Key()] = p, struct{}{}
	}
	for _, np := range s.Policies {
		key := np.Namespace + "/" + np.Name
		st.policies[key], st.dirty.policies[key] = np, struct{}{}
	}
	for _, n := range s.Nodes {
		st.nodes[n.Name], st.dirty.nodes[n.Name] = n, struct{}{}
	}
	return a, conn, rec
}

func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// deletePod changes the store so the next sync has something to send.
func deletePod(a *agent) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	for key, p := range a.store.pods {
		if p.NodeName == a.cfg.NodeName && p.Enforceable() {
			delete(a.store.pods, key)
			a.store.dirty.pods[key] = struct{}{}
			return
		}
	}
}

func dropSets(tb *nft.Table) *nft.Table {
	for name := range tb.Sets {
		delete(tb.Sets, name)
	}
	return tb
}

// TestAgentDecisions drives one agent through a sequence of syncs and
// verifications against the in-memory kernel, failing it on the way, and
// checks after each step its answer, degraded state, backoff, events and
// metrics.
func TestAgentDecisions(t *testing.T) {
	a, conn, rec := fakeAgent(t)
	type step struct {
		name    string
		before  func()
		verify  string // run verify with this cause instead of sync
		ok      bool
		reason  string // substring of the degraded reason; "" when not degraded
		backoff time.Duration
		event   string // the Node event the step emits, "" for none
		// counters afterwards
		errors, transactions float64
		repairs              map[string]float64
	}
	steps := []step{
		{name: "first sync", ok: true, backoff: 100 * time.Millisecond, transactions: 1,
			repairs: map[string]float64{causeStartup: 1}},
		{name: "nothing changed, nothing sent", ok: true, backoff: 100 * time.Millisecond, transactions: 1},
		{name: "apply fails", before: func() { deletePod(a); conn.FailApplies(1) },
			reason: "apply: ", backoff: 200 * time.Millisecond, event: ReasonDegraded, errors: 1, transactions: 1},
		{name: "apply fails again: backoff grows, no second event", before: func() { conn.FailApplies(1) },
			reason: "apply: ", backoff: 400 * time.Millisecond, errors: 2, transactions: 1},
		{name: "retry succeeds", ok: true, backoff: 100 * time.Millisecond, event: ReasonRecovered, errors: 2, transactions: 2},
		{name: "verification finds the table intact", verify: causeInterval, ok: true, backoff: 100 * time.Millisecond,
			errors: 2, transactions: 2},
		{name: "another process empties the table: repaired", before: func() { conn.Tamper(dropSets) }, verify: causeNotification,
			ok: true, backoff: 100 * time.Millisecond, errors: 2, transactions: 3, repairs: map[string]float64{causeNotification: 1}},
		{name: "read back fails", before: func() { conn.FailReads(1) }, verify: causeInterval,
			reason: "read back: ", backoff: 200 * time.Millisecond, event: ReasonDegraded, errors: 3, transactions: 3},
		{name: "repair refused", before: func() { conn.Tamper(dropSets); conn.FailApplies(1) }, verify: causeInterval,
			reason: "repair: ", backoff: 400 * time.Millisecond, errors: 4, transactions: 3},
		{name: "repair retried by the verification: recovered", verify: causeInterval, ok: true, backoff: 100 * time.Millisecond,
			event: ReasonRecovered, errors: 4, transactions: 4, repairs: map[string]float64{causeInterval: 1}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		var ok bool
		if s.verify != "" {
			ok = a.verify(s.verify)
		} else {
			ok = a.sync()
		}
		if ok != s.ok {
			t.Errorf("%s: ok=%v, want %v (degraded: %q)", s.name, ok, s.ok, a.degraded)
		}
		if (a.degraded == "") != (s.reason == "") || !strings.Contains(a.degraded, s.reason) {
			t.Errorf("%s: degraded %q, want %q", s.name, a.degraded, s.reason)
		}
		if got := a.status.ready(); (got == nil) != (s.reason == "") {
			t.Errorf("%s: /readyz says %v", s.name, got)
		}
		if got := a.backoff(); got != s.backoff {
			t.Errorf("%s: backoff %v, want %v", s.name, got, s.backoff)
		}
		var events []string
		for len(rec.Events) > 0 {
			events = append(events, <-rec.Events)
		}
		switch {
		case s.event == "" && len(events) > 0:
			t.Errorf("%s: unexpected events %q", s.name, events)
		case s.event != "" && (len(events) != 1 || !strings.Contains(events[0], s.event)):
			t.Errorf("%s: events %q, want one %s", s.name, events, s.event)
		}
		if got := value(t, a.metrics.applyErrors); got != s.errors {
			t.Errorf("%s: apply_errors_total %v, want %v", s.name, got, s.errors)
		}
		if got, want := value(t, a.metrics.degraded), map[bool]float64{true: 1, false: 0}[s.reason != ""]; got != want {
			t.Errorf("%s: degraded gauge %v, want %v", s.name, got, want)
		}
		if got := value(t, a.metrics.transactions); got != s.transactions {
			t.Errorf("%s: transactions_total %v, want %v", s.name, got, s.transactions)
		}
		for cause, want := range s.repairs {
			if got := value(t, a.metrics.repairs.WithLabelValues(cause)); got != want {
				t.Errorf("%s: repairs_total{cause=%s} %v, want %v", s.name, cause, got, want)
			}
		}
		if s.ok && a.pipe.Desired() != nil {
			if d := nft.Diff(a.pipe.Desired(), conn.Table()); !d.Empty() {
				t.Errorf("%s: kernel differs from the desired table: %v", s.name, d.Differences)
			}
		}
	}
}

// TestAgentStopLeavesOrRemovesTheTable: the table stays on stop unless
// --cleanup-on-exit.
func TestAgentStopLeavesOrRemovesTheTable(t *testing.T) {
	for _, cleanup := range []bool{false, true} {
		a, conn, _ := fakeAgent(t)
		a.cfg.CleanupOnExit = cleanup
		if !a.sync() {
			t.Fatal("first sync failed")
		}
		if err := a.stop(); err != nil {
			t.Fatal(err)
		}
		if gone := conn.Table() == nil; gone != cleanup {
			t.Errorf("cleanup-on-exit=%v: table removed=%v", cleanup, gone)
		}
	}
}
