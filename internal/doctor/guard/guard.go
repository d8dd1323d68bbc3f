package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/kube-fence/kube-fence/internal/doctor"
)

// Guard is the doctor running for good on one node.
type Guard struct {
	// Check is what each scan does (Fix for repairs); Watch drives it.
	Check doctor.Check
	// Listen is host:port for /metrics and /healthz; empty serves nothing.
	Listen string
	// Node names the Node that Events are about; with Client nil or Node
	// empty no Event is sent.
	Node   string
	Client kubernetes.Interface
	// Log receives what the guard does.
	Log io.Writer

	metrics *Metrics
	mu      sync.Mutex
	last    time.Time // end of the last check
	lastErr error
	checked bool
	seen    map[string]doctor.Finding
	emit    func(Event)
}

// Run serves /metrics and /healthz and watches until ctx ends.
func (g *Guard) Run(ctx context.Context) error {
	if g.Log == nil {
		g.Log = io.Discard
	}
	g.metrics = NewMetrics()
	g.seen = map[string]doctor.Finding{}
	g.emit = func(Event) {}
	if g.Client != nil && g.Node != "" {
		stop := g.startEvents(ctx)
		defer stop()
	}
	if g.Listen != "" {
		ln, err := net.Listen("tcp", g.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s for /metrics and /healthz: %w", g.Listen, err)
		}
		srv := &http.Server{Handler: g.handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Fprintf(g.Log, "guard: serving /metrics and /healthz on %s\n", ln.Addr())
	}
	return g.Check.Watch(ctx, g.observe)
}

func (g *Guard) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		code, text := g.health()
		w.WriteHeader(code)
		fmt.Fprintln(w, text)
	})
	return mux
}

// health is 200 once a scan succeeded and as long as the last one did.
func (g *Guard) health() (int, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !g.checked:
		return http.StatusServiceUnavailable, "no scan finished yet"
	case g.lastErr != nil:
		return http.StatusServiceUnavailable, "last scan failed: " + g.lastErr.Error()
	}
	return http.StatusOK, fmt.Sprintf("ok: last scan at %s, %d finding(s)", g.last.UTC().Format(time.RFC3339), len(g.seen))
}

// observe turns one check into metrics, Events and the health state.
func (g *Guard) observe(res doctor.Result, err error) {
	g.metrics.observe(res, err)
	g.mu.Lock()
	g.checked, g.last, g.lastErr = true, time.Now(), err
	if res.Report == nil {
		g.mu.Unlock()
		if res.FixErr != nil {
			g.emit(Event{Warning: true, Reason: ReasonFixFailed, Message: "kube-fence doctor --fix changed nothing: " + res.FixErr.Error()})
		}
		return
	}
	events := Diff(g.seen, res.Report.Findings, res.Fixed)
	g.seen = map[string]doctor.Finding{}
	for _, f := range res.Report.Findings {
		g.seen[key(f)] = f
	}
	g.mu.Unlock()
	for _, e := range events {
		fmt.Fprintf(g.Log, "guard: %s: %s\n", e.Reason, e.Message)
		g.emit(e)
	}
}

// maxMessage keeps Event messages within what the API server accepts.
const maxMessage = 1000

// startEvents wires emit to Events on the Node; the returned function
// flushes and stops them.
func (g *Guard) startEvents(ctx context.Context) func() {
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: g.Node}
	if n, err := g.Client.CoreV1().Nodes().Get(ctx, g.Node, metav1.GetOptions{}); err == nil {
		ref.UID = n.UID
	} else if !errors.Is(err, context.Canceled) {
		fmt.Fprintf(g.Log, "guard: get Node %s for its UID (Events still name it): %v\n", g.Node, err)
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: g.Client.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kube-fence-doctor", Host: g.Node})
	g.emit = func(e Event) {
		typ := corev1.EventTypeNormal
		if e.Warning {
			typ = corev1.EventTypeWarning
		}
		msg := e.Message
		if len(msg) > maxMessage {
			msg = msg[:maxMessage-3] + "..."
		}
		rec.Event(ref, typ, e.Reason, msg)
	}
	return b.Shutdown
}
