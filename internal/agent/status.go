package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// status is what /healthz and /readyz report.
type status struct {
	mu        sync.Mutex
	synced    bool      // a sync has left the kernel equal to the desired table
	degraded  string    // why the table is not as desired; empty when it is
	heartbeat time.Time // last time the writer loop went round
	stale     time.Duration
	// waiting: the informers are listing the API server before the first
	// sync. The writer loop has not started, and a restart would not make an
	// unreachable API server answer, so liveness holds while the table left
	// by the previous agent keeps enforcing.
	waiting bool
}

func (s *status) setWaiting(w bool) {
	s.mu.Lock()
	s.waiting = w
	s.heartbeat = time.Now()
	s.mu.Unlock()
}

func (s *status) beat() {
	s.mu.Lock()
	s.heartbeat = time.Now()
	s.mu.Unlock()
}

func (s *status) set(synced bool, degraded string) {
	s.mu.Lock()
	s.synced = s.synced || synced
	s.degraded = degraded
	s.mu.Unlock()
}

// healthy: the writer loop is alive. A stuck loop is the only thing a
// restart could fix; a degraded table is not (the kernel or another program
// refuses it), so it does not fail liveness.
func (s *status) healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting {
		return nil
	}
	if age := time.Since(s.heartbeat); age > s.stale {
		return fmt.Errorf("writer loop silent for %v", age.Round(time.Second))
	}
	return nil
}

// ready: the kernel holds the table for the current cluster state.
func (s *status) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.degraded != "":
		return errors.New("degraded: " + s.degraded)
	case s.waiting:
		return errors.New("waiting for the API server's initial lists of pods, namespaces, NetworkPolicies and this Node")
	case !s.synced:
		return errors.New("first sync not done")
	}
	return nil
}

func probeHandler(check func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if err := check(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// serve starts the health and metrics servers. Listen errors are returned at
// once (a port in use is a configuration error); serving errors are logged.
func serve(ctx context.Context, log *slog.Logger, cfg Config, st *status, m *metrics) error {
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if cfg.HealthAddr != "" {
		mux(cfg.HealthAddr).Handle("/healthz", probeHandler(st.healthy))
		mux(cfg.HealthAddr).Handle("/readyz", probeHandler(st.ready))
	}
	if cfg.MetricsAddr != "" {
		mux(cfg.MetricsAddr).Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	}
	if cfg.Profiling {
		// Index serves every named profile (heap, goroutine, ...) below it.
		mx := mux(cfg.MetricsAddr)
		mx.HandleFunc("/debug/pprof/", pprof.Index)
		mx.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mx.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mx.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mx.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for addr, mx := range muxes {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: mx, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "addr", addr, "err", err)
			}
		}()
		log.Info("serving", "addr", ln.Addr().String())
	}
	return nil
}
