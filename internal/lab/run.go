package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/netns"
)

// Targets lists every probe of the full matrix: every ordered pair of
// distinct running pods, every declared port of the destination (with its
// protocol), every IP family both pods have. Two hostNetwork pods of one
// node share a namespace and are not probed against each other. The list is
// sorted by source, destination, protocol (TCP, UDP, SCTP), port and family.
func (l *Lab) Targets() []Target {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Target
	keys := sortedKeys(l.pods)
	for _, from := range keys {
		src := l.pods[from]
		for _, to := range keys {
			dst := l.pods[to]
			if from == to || src.tp.NS() == dst.tp.NS() {
				continue
			}
			for _, port := range sortedPorts(dst.pod.Ports) {
				for _, v4 := range []bool{true, false} {
					ip, ok := addrOf(dst.pod.IPs, v4)
					if _, shared := addrOf(src.pod.IPs, v4); !ok || !shared {
						continue
					}
					out = append(out, Target{
						From: from, To: to, Family: scenario.FamilyOf(ip), IP: ip,
						Protocol: port.Protocol, Port: port.Port,
					})
				}
			}
		}
	}
	return out
}

// addrOf returns the pod's address of one family.
func addrOf(ips []netip.Addr, v4 bool) (netip.Addr, bool) {
	for _, ip := range ips {
		if ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

var protocolRank = map[corev1.Protocol]int{corev1.ProtocolTCP: 0, corev1.ProtocolUDP: 1, corev1.ProtocolSCTP: 2}

// sortedPorts returns the distinct protocol/port pairs a pod declares.
func sortedPorts(ports []cluster.ContainerPort) []cluster.ContainerPort {
	var out []cluster.ContainerPort
	for _, p := range ports {
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		p.Name = ""
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b cluster.ContainerPort) int {
		if d := protocolRank[a.Protocol] - protocolRank[b.Protocol]; d != 0 {
			return d
		}
		return int(a.Port - b.Port)
	})
	return out
}

// Probe runs the full matrix (Targets).
func (l *Lab) Probe(ctx context.Context) ([]Result, error) {
	return l.ProbeTargets(ctx, l.Targets())
}

// ProbeTargets runs the given probes, Options.Parallelism at a time, and
// returns their results in the same order. The error is for the lab failing
// (or ctx ending), never for a connection being blocked.
func (l *Lab) ProbeTargets(ctx context.Context, targets []Target) ([]Result, error) {
	l.inflight.RLock()
	defer l.inflight.RUnlock()
	start := time.Now()
	l.mu.Lock()
	sources := map[string]*netns.NS{}
	srcIPs := map[string][]netip.Addr{}
	for _, t := range targets {
		lp := l.pods[t.From]
		if lp == nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("probe from %s: no such running pod", t.From)
		}
		sources[t.From], srcIPs[t.From] = lp.tp.NS(), lp.pod.IPs
	}
	l.mu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(targets))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(l.opts.Parallelism, len(targets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, err := l.net.Probe(ctx, sources[targets[i].From], targets[i], l.opts.ProbeTimeout)
				if err != nil {
					cancel(err)
				}
				results[i] = r
			}
		}()
	}
feed:
	for i := range targets {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if w, ok := l.opts.Enforcer.(Witness); ok && w.LogsDrops() {
		if err := l.markDrops(w, start, results, srcIPs); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// DropsLogged reports whether blocked probes say where they were dropped
// (Result.DroppedBy): the enforcer's tables log drops and it reads them.
func (l *Lab) DropsLogged() bool {
	w, ok := l.opts.Enforcer.(Witness)
	return ok && w.LogsDrops()
}

// markDrops sets DroppedBy of every blocked probe from what the kernels
// logged since the batch started. A blocked probe has given up waiting by
// the time it returns, long after its packets were logged; records are
// read within microseconds, but a loaded machine gets a moment's grace.
func (l *Lab) markDrops(w Witness, start time.Time, results []Result, srcIPs map[string][]netip.Addr) error {
	const grace = 200 * time.Millisecond
	deadline := time.Now().Add(grace)
	if w.Auditing() {
		// A connected probe may return before its "would deny" record is
		// read, and most have none to wait for: give them all a moment.
		time.Sleep(50 * time.Millisecond)
	}
	for i := range results {
		r := &results[i]
		if r.Problem != "" {
			continue
		}
		src, ok := addrOf(srcIPs[r.From], r.IP.Is4())
		if !ok {
			continue
		}
		proto, _ := protocolNumber(r.Protocol)
		f := Flow{Src: src, Dst: r.IP, Protocol: proto, Port: uint16(r.Port)}
		if r.Connected {
			r.AuditDenied = w.WouldDeny(start, f)
			continue
		}
		for {
			r.DroppedBy = string(w.Dropped(start, f))
			if r.DroppedBy != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := w.Complete(); err != nil {
		return fmt.Errorf("where probes were dropped is unknown: %w", err)
	}
	return nil
}

func protocolNumber(p corev1.Protocol) (uint8, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return 6, true
	case corev1.ProtocolUDP:
		return 17, true
	case corev1.ProtocolSCTP:
		return 132, true
	}
	return 0, false
}
