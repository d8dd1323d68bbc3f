package agent

import (
	"io"
	"log/slog"
	"testing"

	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

// TestReportProblems: a policy's problems are reported once while they stay
// the same, again when they change or come back after a fix, and the gauges
// count every policy the store holds.
func TestReportProblems(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := record.NewFakeRecorder(100)
	a := &agent{log: log, store: newStore(log), metrics: newMetrics(),
		events: &eventSink{recorder: rec, reported: map[problemKey]string{}}}
	for _, name := range []string{"bad", "good", "other"} {
		a.store.setPolicy(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name}})
	}
	cidr := plan.Problem{Policy: "x/bad", Field: "spec.ingress[0].from[0].ipBlock.cidr", Message: "invalid CIDR"}
	port := plan.Problem{Policy: "x/bad", Field: "spec.ingress[0].ports[0].endPort", Message: "below port"}
	steps := []struct {
		name     string
		problems []plan.Problem
		events   int
		rejected float64
	}{
		{"a problem is reported", []plan.Problem{cidr}, 1, 1},
		{"the same problem is not reported again", []plan.Problem{cidr}, 0, 1},
		{"a second problem changes the report", []plan.Problem{cidr, port}, 1, 1},
		{"fixed: nothing to report", nil, 0, 0},
		{"broken again: reported again", []plan.Problem{cidr}, 1, 1},
		{"a problem of a policy deleted meanwhile is not reported", []plan.Problem{cidr, {Policy: "x/gone", Field: "spec", Message: "m"}}, 0, 2},
	}
	for _, s := range steps {
		a.reportProblems(3, 0, &plan.Plan{Problems: s.problems})
		if got := len(rec.Events); got != s.events {
			t.Errorf("%s: %d events, want %d", s.name, got, s.events)
		}
		for len(rec.Events) > 0 {
			<-rec.Events
		}
		if got := gauge(t, a.metrics.policies.WithLabelValues("NetworkPolicy", "rejected")); got != s.rejected {
			t.Errorf("%s: rejected gauge %v, want %v", s.name, got, s.rejected)
		}
		if got := gauge(t, a.metrics.policies.WithLabelValues("NetworkPolicy", "enforced")); got != 3-s.rejected {
			t.Errorf("%s: enforced gauge %v, want %v", s.name, got, 3-s.rejected)
		}
	}
}

func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
