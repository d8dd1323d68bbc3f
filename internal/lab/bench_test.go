package lab_test

import (
	"context"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/labtest"
	"github.com/kube-fence/kube-fence/internal/lab/topo"
)

// The Kubernetes e2e model: 3 namespaces x 3 pods, ports 80 and 81 over TCP
// and UDP plus 80 over SCTP, dual-stack: 72 pairs x 5 ports x 2 families =
// 720 probes.
var e2eModel = model("xyz", "abc", 1, "80/TCP", "81/TCP", "80/UDP", "81/UDP", "80/SCTP")

// BenchmarkProbeAllowed measures the full matrix when everything connects.
func BenchmarkProbeAllowed(b *testing.B) {
	for _, layout := range []topo.Layout{topo.Bridge, topo.Routed} {
		b.Run(string(layout), func(b *testing.B) {
			l := start(b, snapshot(b, e2eModel), lab.Options{Layout: layout})
			benchProbe(b, l, 720)
		})
	}
}

// BenchmarkProbeBlocked measures the full matrix when a third of the pods
// (every pod in namespace x) drop all new connections: each of those probes
// waits for its whole timeout.
func BenchmarkProbeBlocked(b *testing.B) {
	enf := &labtest.DropEnforcer{Rules: labtest.DropTo("x/a", "x/b", "x/c")}
	l := start(b, snapshot(b, e2eModel), lab.Options{Enforcer: enf})
	benchProbe(b, l, 720)
}

// BenchmarkBuild measures building and closing the e2e model lab.
func BenchmarkBuild(b *testing.B) {
	snap := snapshot(b, e2eModel)
	for b.Loop() {
		l, err := lab.New(context.Background(), snap, lab.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchProbe(b *testing.B, l *lab.Lab, want int) {
	b.Helper()
	for b.Loop() {
		start := time.Now()
		rs := probe(b, l)
		if len(rs) != want {
			b.Fatalf("%d probes, want %d", len(rs), want)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/matrix")
	}
}
