package agent

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestProfiling: the profiles are served on the metrics listener only when
// asked for, and asking for them without a metrics listener is an error.
func TestProfiling(t *testing.T) {
	cfg := Defaults()
	cfg.NodeName = "node-1"
	cfg.Profiling, cfg.MetricsAddr = true, ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--profiling") {
		t.Errorf("profiling without a metrics listener: %v, want an error naming --profiling", err)
	}

	for _, on := range []bool{false, true} {
		cfg.Profiling, cfg.MetricsAddr, cfg.HealthAddr = on, profilingAddr(t), ""
		if err := serve(t.Context(), slog.New(slog.DiscardHandler), cfg, &status{}, newMetrics()); err != nil {
			t.Fatal(err)
		}
		code, body := profilingGet(t, "http://"+cfg.MetricsAddr+"/debug/pprof/heap?debug=1")
		served := code == http.StatusOK && strings.Contains(body, "heap profile")
		if served != on {
			t.Errorf("--profiling=%v: GET /debug/pprof/heap answered %d %.40q", on, code, body)
		}
		if code, _ := profilingGet(t, "http://"+cfg.MetricsAddr+"/metrics"); code != http.StatusOK {
			t.Errorf("--profiling=%v: /metrics answered %d", on, code)
		}
	}
}

// profilingAddr returns a loopback address with a port nothing listens on.
func profilingAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func profilingGet(t *testing.T, url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
