package agent

import (
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus metrics; docs/operations.md lists them.
type metrics struct {
	registry *prometheus.Registry

	syncDuration   prometheus.Histogram
	applyDuration  prometheus.Histogram
	changesApplied prometheus.Counter
	transactions   prometheus.Counter
	verifications  *prometheus.CounterVec
	repairs        *prometheus.CounterVec
	applyErrors    prometheus.Counter
	policies       *prometheus.GaugeVec
	pods           prometheus.Gauge
	tableObjects   *prometheus.GaugeVec
	lastSync       prometheus.Gauge
	degraded       prometheus.Gauge
	deniedPackets  *prometheus.CounterVec
	// wouldDenyPackets counts what policies in audit mode would deny.
	wouldDenyPackets *prometheus.CounterVec
	cutDuration      prometheus.Histogram
	cutEntries       prometheus.Counter
	cutErrors        prometheus.Counter
}

// Repair causes, the values of the cause label.
const (
	causeNotification = "notification" // an nftables change notification from another process
	causeInterval     = "interval"     // the periodic verification
	causeAfterApply   = "after-apply"  // the read-back after our own transaction
	causeStartup      = "startup"      // the table found when the agent started
)

func newMetrics() *metrics {
	const ns = "kube_fence"
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 18) // 100µs .. 13s
	m := &metrics{
		registry: prometheus.NewRegistry(),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "sync_duration_seconds",
			Help: "Time from taking a snapshot of the cluster to the kernel holding its table: compile, render, diff, apply.", Buckets: buckets}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "apply_duration_seconds",
			Help: "Time of one nftables netlink transaction, sent and acknowledged.", Buckets: buckets}),
		changesApplied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "changes_applied_total",
			Help: "Differences between the desired and the committed table that were applied (elements, rules, chains, sets)."}),
		transactions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "transactions_total",
			Help: "nftables transactions committed."}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "verifications_total",
			Help: "Read-backs of the table compared with the desired one, by what triggered them."}, []string{"cause"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "repairs_total",
			Help: "Repairs of the table after reading it back found differences, by what triggered the read-back."}, []string{"cause"}),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "apply_errors_total",
			Help: "Transactions the kernel refused or that could not be sent; the previous table stays in force."}),
		policies: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "policies",
			Help: "Policies known, by kind (NetworkPolicy, ClusterNetworkPolicy) and state: enforced, or rejected when a part could not be compiled."},
			[]string{"kind", "state"}),
		pods: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "pods_enforced",
			Help: "Pods on this node whose addresses are in the table."}),
		tableObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "table_objects",
			Help: "Objects in kube-fence's nftables table, by kind: chains, rules, sets, elements."}, []string{"kind"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_successful_sync_timestamp_seconds",
			Help: "Unix time of the last sync that left the kernel's table equal to the desired one."}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "degraded",
			Help: "1 while the kernel's table could not be brought to the desired state, else 0."}),
		// The namespace is that of this node's pod on the denying side, so
		// the label takes at most as many values as the node has
		// namespaces with pods; "" for unknown addresses.
		deniedPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "denied_packets_total",
			Help: "Denied packets the table logged (--log-denied), by the side that denied them (egress, ingress, unknown-address) and the namespace of this node's pod on that side."},
			[]string{"direction", "namespace"}),
		wouldDenyPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "would_deny_packets_total",
			Help: "Allowed packets of new connections that NetworkPolicies in audit mode (annotation kube-fence.io/mode: audit) would deny, as the table logged them, by side and the namespace of this node's pod on that side."},
			[]string{"direction", "namespace"}),
		cutDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "conntrack_cut_duration_seconds",
			Help: "Time of one cut of the connections a committed table denies: listing the conntrack entries, judging each, deleting the denied ones.", Buckets: buckets}),
		cutEntries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "conntrack_entries_cut_total",
			Help: "Conntrack entries deleted because the committed table denies their connection (--existing-connections=cut)."}),
		cutErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "conntrack_cut_errors_total",
			Help: "Cuts that failed (listing, or deleting an entry); the cut is retried with backoff."}),
	}
	m.registry.MustRegister(m.syncDuration, m.applyDuration, m.changesApplied, m.transactions, m.verifications, m.repairs,
		m.applyErrors, m.policies, m.pods, m.tableObjects, m.lastSync, m.degraded, m.deniedPackets, m.wouldDenyPackets,
		m.cutDuration, m.cutEntries, m.cutErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range []string{causeNotification, causeInterval, causeAfterApply, causeStartup} {
		m.verifications.WithLabelValues(c)
		m.repairs.WithLabelValues(c)
	}
	for _, kind := range []string{plan.KindNetworkPolicy, plan.KindClusterNetworkPolicy} {
		m.setPolicies(kind, 0, 0)
	}
	return m
}

// setPolicies sets the policy gauges of one kind (a plan.Problem Kind).
func (m *metrics) setPolicies(kind string, known, rejected int) {
	if kind == plan.KindNetworkPolicy {
		kind = "NetworkPolicy"
	}
	m.policies.WithLabelValues(kind, "enforced").Set(float64(known - rejected))
	m.policies.WithLabelValues(kind, "rejected").Set(float64(rejected))
}
