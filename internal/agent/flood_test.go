package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan/plantest"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// floodEnv makes the test binary the flooder when the benchmark runs it
// again: a process of its own, so its CPU is not the agent's.
const floodEnv = "KUBE_FENCE_FLOOD_SECONDS"

func init() {
	if secs := os.Getenv(floodEnv); secs != "" {
		n, err := flood(secs)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("sent %d\n", n)
		os.Exit(0)
	}
}

// flood sends UDP packets to a port the table drops, each connection from
// a new source port (a new flow, so nothing is deduplicated), for secs
// seconds.
func flood(secs string) (int, error) {
	d, err := time.ParseDuration(secs + "s")
	if err != nil {
		return 0, err
	}
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		c, err := net.Dial("udp", "127.0.0.1:9999")
		if err != nil {
			return n, err
		}
		for range 8 {
			_, _ = c.Write([]byte("x"))
		}
		c.Close()
		n += 8
	}
	return n, nil
}

// BenchmarkDeniedFlood measures what a flood of denied packets costs the
// agent's log reader: another process sends denied UDP packets, each
// connection a new flow, for 5 seconds per iteration, through a drop chain
// with the default limit (100/s, burst 100) and with a limit the flood
// never reaches. It reports the agent process's CPU (user+system, in
// percent of one core), its heap in use, the packets sent per second and
// the records read per second.
func BenchmarkDeniedFlood(b *testing.B) {
	for _, tc := range []struct {
		name string
		log  nft.DropLog
	}{
		{"limit-100", nft.DropLog{}},
		{"unlimited", nft.DropLog{Rate: 1 << 24, Burst: 1 << 24}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchFlood(b, tc.log) })
	}
}

func benchFlood(b *testing.B, log nft.DropLog) {
	nftBin := testenv.RequireBinary(b, "nft", "nftables")
	ns := testenv.NetNS(b)
	r := nft.Renderer{DropLog: log}
	text := nft.Text(r.Render(plantest.Small()))
	text = strings.TrimSuffix(text, "}\n") + "\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 9999 goto drop-egress\n\t}\n}\n"
	load := exec.Command(nftBin, "-f", "-")
	load.Stdin = strings.NewReader(text)
	if err := ns.Do(func() error {
		if out, err := load.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	m := newMetrics()
	d := &deniedLog{log: slog.New(slog.NewJSONHandler(io.Discard, nil)), metrics: m}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reader, err := startDeniedLog(ctx, Config{NetNSFD: ns.FD(), DropLog: log}, d)
	if err != nil {
		b.Fatal(err)
	}
	const seconds = 5
	var cpu, wall time.Duration
	var sent, read uint64
	var heap uint64
	b.ResetTimer()
	for range b.N {
		before, start := processCPU(), time.Now()
		readBefore := d.handled.Load()
		flood := exec.Command(os.Args[0])
		flood.Env = append(os.Environ(), fmt.Sprintf("%s=%d", floodEnv, seconds))
		var out []byte
		if err := ns.Do(func() error { out, err = flood.Output(); return err }); err != nil || !strings.Contains(string(out), "sent ") {
			b.Fatalf("flooder: %v\n%s", err, out)
		}
		var n uint64
		fmt.Sscanf(string(out[strings.Index(string(out), "sent "):]), "sent %d", &n)
		time.Sleep(200 * time.Millisecond) // the last records
		cpu += processCPU() - before
		wall += time.Since(start)
		sent += n
		read += d.handled.Load() - readBefore
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapInuse)
	}
	b.StopTimer()
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu%")
	b.ReportMetric(float64(heap)/(1<<20), "heapMiB")
	b.ReportMetric(float64(sent)/wall.Seconds(), "sent/s")
	b.ReportMetric(float64(read)/wall.Seconds(), "records/s")
	if reader.Lost.Load() > 0 {
		b.Logf("%d records lost", reader.Lost.Load())
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
