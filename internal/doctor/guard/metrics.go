package guard

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-fence/kube-fence/internal/doctor"
)

// Metrics are the guard's Prometheus metrics, documented in docs/doctor.md.
type Metrics struct {
	Registry     *prometheus.Registry
	findings     *prometheus.GaugeVec
	repairs      prometheus.Counter
	repairErrors prometheus.Counter
	scans        *prometheus.CounterVec
	duration     prometheus.Histogram
	lastScan     prometheus.Gauge
}

// NewMetrics registers the guard's metrics on a registry of its own.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_fence_doctor_findings",
			Help: "Foreign rules that break or mislead iptables-nft, by severity (fatal, incompatible, misread), family, table, chain and likely owner, as of the last scan.",
		}, []string{"severity", "family", "table", "chain", "owner"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kube_fence_doctor_repairs_total",
			Help: "Rules --fix rewrote into their iptables-written form.",
		}),
		repairErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kube_fence_doctor_repair_failures_total",
			Help: "Repairs the kernel refused or that could not write their rollback file (nothing changed).",
		}),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_fence_doctor_scans_total",
			Help: "Scans of the ruleset, by result (ok, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kube_fence_doctor_scan_duration_seconds",
			Help:    "Time to read and analyse the whole ruleset once.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms to 8 s
		}),
		lastScan: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kube_fence_doctor_last_scan_timestamp_seconds",
			Help: "When the last successful scan ended (Unix time).",
		}),
	}
	m.Registry.MustRegister(m.findings, m.repairs, m.repairErrors, m.scans, m.duration, m.lastScan,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// observe records one check.
func (m *Metrics) observe(res doctor.Result, err error) {
	m.repairs.Add(float64(len(res.Fixed.Rewritten)))
	if res.FixErr != nil {
		m.repairErrors.Inc()
	}
	if res.Report == nil {
		m.scans.WithLabelValues("error").Inc()
		return
	}
	m.scans.WithLabelValues("ok").Inc()
	m.duration.Observe(res.Duration.Seconds())
	m.lastScan.SetToCurrentTime()
	m.findings.Reset()
	for _, f := range res.Report.Findings {
		m.findings.WithLabelValues(f.Severity, f.Family, f.Table, f.Chain, f.Owner.Name).Inc()
	}
}
