package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/droplog/listen"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// deniedLog turns the table's NFLOG records into log lines and metrics
// (--log-denied). It runs on the reader's goroutine and reads the plan of
// the last successful sync, so it never waits for the writer loop.
type deniedLog struct {
	log     *slog.Logger
	plan    atomic.Pointer[plan.Plan]
	audit   atomic.Pointer[plan.Plan] // with the policies in audit mode enforced; nil without them
	podByIP func(netip.Addr) string
	metrics *metrics
	seen    dedup
	handled atomic.Uint64 // records handled, for the flood benchmark
	reader  atomic.Pointer[listen.Reader]
}

// bindRetry is how often the agent tries again to bind an NFLOG group
// another process holds.
const bindRetry = 10 * time.Second

// run starts reading the table's records. The kernel gives a group to one
// socket per network namespace: while another process holds it (a second
// agent, or the previous one during a restart) the agent enforces as
// always, says so, and tries again every bindRetry.
func (d *deniedLog) run(ctx context.Context, cfg Config) {
	r, err := startDeniedLog(ctx, cfg, d)
	if err == nil {
		d.reader.Store(r)
		return
	}
	d.log.Warn("denied packets are not logged until the NFLOG group is free; retrying", "err", err, "retryIn", bindRetry)
	go func() {
		t := time.NewTicker(bindRetry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if r, err := startDeniedLog(ctx, cfg, d); err == nil {
				d.reader.Store(r)
				d.log.Info("denied packets are logged again")
				return
			}
		}
	}()
}

// lost is the records the current reader lost.
func (d *deniedLog) lost() uint64 {
	if r := d.reader.Load(); r != nil {
		return r.Lost.Load()
	}
	return 0
}

// attribution is what the cluster says about a record: the pods at both
// ends and, for the side that denied it, the policies isolating that side.
type attribution struct {
	srcPod, dstPod string
	// policies isolate the side that denied the packet (for a record of
	// audit mode, with the policies in audit mode among them); empty for
	// the default deny of unknown addresses.
	policies []string
	// rule names the ClusterNetworkPolicy rule that denied, when one did
	// (policies then holds its policy's name): "Deny guard spec.ingress[0]".
	rule string
	// namespace is the namespace of this node's pod on the denying side,
	// the label of the denied-packets metric; empty for unknown addresses.
	namespace string
}

// attribute is pure: the plan decides the denying side's pod and policies,
// podByIP names pods anywhere in the cluster.
func attribute(rec droplog.Record, pl *plan.Plan, podByIP func(netip.Addr) string) attribution {
	var a attribution
	if podByIP != nil {
		a.srcPod, a.dstPod = podByIP(rec.Src), podByIP(rec.Dst)
	}
	if pl == nil {
		return a
	}
	addr, dir := rec.Src, plan.Egress
	switch rec.Side {
	case droplog.SideIngress:
		addr, dir = rec.Dst, plan.Ingress
	case droplog.SideUnknownAddress:
		return a
	}
	lp := pl.LocalPod(addr)
	if lp == nil {
		return a
	}
	a.namespace = lp.Namespace
	if dir == plan.Egress && a.srcPod == "" {
		a.srcPod = lp.Key()
	}
	if dir == plan.Ingress && a.dstPod == "" {
		a.dstPod = lp.Key()
	}
	id := lp.Ingress
	if dir == plan.Egress {
		id = lp.Egress
	}
	prof := pl.Profile(id)
	if prof == nil {
		return a
	}
	a.policies = prof.Policies
	if prof.Tiered() {
		// The record says the side, not the rule: ask the profile, as the
		// table ran it, which ClusterNetworkPolicy rule decided, if one did.
		peer := rec.Src
		if dir == plan.Egress {
			peer = rec.Dst
		}
		node := dir == plan.Egress && pl.NodeAddrs.Contains(peer)
		if _, r := prof.Decide(peer, plan.Protocol(rec.Protocol), rec.DstPort, node); r != nil {
			a.policies, a.rule = []string{r.Policy}, r.Action.String()+" "+r.Policy+" "+r.Field
		}
	}
	return a
}

// handle logs and counts one record.
func (d *deniedLog) handle(rec droplog.Record) {
	d.handled.Add(1)
	pl, counter := d.plan.Load(), d.metrics.deniedPackets
	if rec.Audit {
		pl, counter = d.audit.Load(), d.metrics.wouldDenyPackets
	}
	a := attribute(rec, pl, d.podByIP)
	counter.WithLabelValues(string(rec.Side), a.namespace).Inc()
	if !d.seen.first(rec) {
		return // a retransmission of an attempt already logged
	}
	msg := "connection denied"
	if rec.Audit {
		msg = "connection would be denied"
	}
	policies := a.policies
	if policies == nil {
		policies = []string{}
	}
	d.log.LogAttrs(context.Background(), slog.LevelInfo, msg,
		slog.Time("at", rec.Time),
		slog.String("family", family(rec.Src)),
		slog.String("protocol", protocolName(rec.Protocol)),
		slog.String("src", rec.Src.String()), slog.Int("srcPort", int(rec.SrcPort)),
		slog.String("dst", rec.Dst.String()), slog.Int("dstPort", int(rec.DstPort)),
		slog.String("srcPod", a.srcPod), slog.String("dstPod", a.dstPod),
		slog.String("side", string(rec.Side)),
		slog.Any("policies", policies),
		slog.String("rule", a.rule))
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func protocolName(p uint8) string {
	switch p {
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 132:
		return "SCTP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return strconv.Itoa(int(p))
}

// dedup makes one log line per connection attempt: a denied TCP SYN is
// retransmitted with the same ports after 1, 3, 7... seconds, and a UDP
// client often resends. Each flow is logged once per window; the table
// is bounded so a scan of many ports cannot grow it without end.
type dedup struct {
	mu   sync.Mutex
	last map[flowKey]time.Time
}

type flowKey struct {
	side             droplog.Side
	audit            bool
	proto            uint8
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

const (
	dedupWindow = 10 * time.Second
	dedupMax    = 8192
)

func (d *dedup) first(rec droplog.Record) bool {
	k := flowKey{rec.Side, rec.Audit, rec.Protocol, rec.Src, rec.Dst, rec.SrcPort, rec.DstPort}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last = map[flowKey]time.Time{}
	}
	if at, ok := d.last[k]; ok && now.Sub(at) < dedupWindow {
		return false
	}
	if len(d.last) >= dedupMax {
		for k, at := range d.last {
			if now.Sub(at) >= dedupWindow {
				delete(d.last, k)
			}
		}
		if len(d.last) >= dedupMax {
			clear(d.last) // a flood of distinct flows: log some twice rather than grow
		}
	}
	d.last[k] = now
	return true
}

// startDeniedLog opens the NFLOG group of the table in the agent's network
// namespace and starts logging. Records logged before it returns are lost:
// it runs before the first sync, so none are.
func startDeniedLog(ctx context.Context, cfg Config, d *deniedLog) (*listen.Reader, error) {
	l := cfg.DropLog.Defaults()
	r, err := listen.Open(cfg.NetNSFD, l.Group)
	if err != nil {
		return nil, fmt.Errorf("--log-denied: %w", err)
	}
	if err := r.Start(ctx, d.handle); err != nil {
		return nil, fmt.Errorf("--log-denied: NFLOG group %d: %w", l.Group, err)
	}
	go func() {
		<-r.Done()
		if err := r.Err(); err != nil {
			d.log.Error("reading denied packets stopped; no more are logged", "err", err)
		}
	}()
	return r, nil
}

// dropCollector reports what the kernel counted at scrape time: records the
// rate limit suppressed (read from the drop chains' counters) and records
// the socket lost.
type dropCollector struct {
	netnsFD    int
	lost       func() uint64
	suppressed *prometheus.Desc
	lostDesc   *prometheus.Desc
}

func newDropCollector(netnsFD int, lost func() uint64) *dropCollector {
	return &dropCollector{
		netnsFD: netnsFD,
		lost:    lost,
		suppressed: prometheus.NewDesc("kube_fence_denied_log_suppressed_total",
			"Packets the table did not log because the --log-rate limit of their side was exceeded: denied ones (mode deny, dropped all the same) and those audit policies would deny (mode audit). Read from the logging chains' counters, which restart at 0 when the table is rebuilt.",
			[]string{"direction", "mode"}, nil),
		lostDesc: prometheus.NewDesc("kube_fence_denied_log_lost_total",
			"Denied-packet records the agent could not read: the socket's buffer overflowed (ENOBUFS) or a record could not be decoded.", nil, nil),
	}
}

func (c *dropCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.suppressed
	ch <- c.lostDesc
}

func (c *dropCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.lostDesc, prometheus.CounterValue, float64(c.lost()))
	counts, err := kernel.ReadSuppressed(c.netnsFD)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.suppressed, err)
		return
	}
	for _, lc := range nft.LogChains {
		if n, ok := counts[lc]; ok {
			mode := "deny"
			if lc.Audit {
				mode = "audit"
			}
			ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(n), string(lc.Side), mode)
		}
	}
}
