package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/droplog/listen"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
)

// Witness is an Enforcer that knows from its nodes' kernels where packets
// were dropped. The lab asks it after every batch of probes and copies the
// answer into each blocked probe's Result.DroppedBy.
type Witness interface {
	// LogsDrops reports whether the tables log drops at all.
	LogsDrops() bool
	// Dropped returns where a packet of the flow was dropped since the time
	// given ("" when no drop was logged).
	Dropped(since time.Time, f Flow) droplog.Side
	// WouldDeny reports whether a packet of the flow was logged since the
	// time given as one policies in audit mode would deny.
	WouldDeny(since time.Time, f Flow) bool
	// Auditing reports whether some policy is in audit mode.
	Auditing() bool
	// Complete returns an error when a drop may have gone unlogged since
	// the enforcer started: a rate limit suppressed a record or the socket
	// lost one. A lab that reports where packets were dropped must not
	// guess.
	Complete() error
}

// Flow identifies the packets of one probe: its addresses, protocol and
// destination port (the lab probes each at most once per batch).
type Flow struct {
	Src, Dst netip.Addr
	Protocol uint8
	Port     uint16
}

// labDropLog is how the lab's tables log: a limit far above anything the
// probes send, so no probe's record is suppressed (and Complete says so if
// one was).
var labDropLog = nft.DropLog{Rate: 1 << 20, Burst: 1 << 20}

// drops collects the NFLOG records of every node.
type drops struct {
	mu      sync.Mutex
	flows   map[Flow][]loggedDrop
	audits  map[Flow][]loggedDrop
	readers map[string]*listen.Reader
	fds     map[string]int // network namespace of each node, to read its counters
	cancels []context.CancelFunc
}

type loggedDrop struct {
	at   time.Time // when the record was read: kernel timestamps of forwarded packets need not be wall time
	side droplog.Side
}

// keepPerFlow bounds the records kept per flow: a long run probes the same
// flows again and again, and only records since a batch began matter.
const keepPerFlow = 8

// watch starts reading the records of a node's table.
func (d *drops) watch(node string, netnsFD int, group uint16) error {
	r, err := listen.Open(netnsFD, group)
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Start(ctx, d.record); err != nil {
		cancel()
		return fmt.Errorf("node %s: %w", node, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.readers == nil {
		d.readers, d.fds = map[string]*listen.Reader{}, map[string]int{}
		d.flows, d.audits = map[Flow][]loggedDrop{}, map[Flow][]loggedDrop{}
	}
	d.readers[node], d.fds[node] = r, netnsFD
	d.cancels = append(d.cancels, cancel)
	return nil
}

func (d *drops) record(rec droplog.Record) {
	f := Flow{Src: rec.Src, Dst: rec.Dst, Protocol: rec.Protocol, Port: rec.DstPort}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flows == nil {
		return // closed
	}
	m := d.flows
	if rec.Audit {
		m = d.audits
	}
	l := append(m[f], loggedDrop{at: time.Now(), side: rec.Side})
	m[f] = l[max(0, len(l)-keepPerFlow):]
}

// Dropped implements Witness.
func (d *drops) Dropped(since time.Time, f Flow) droplog.Side {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.flows[f] {
		if !l.at.Before(since) {
			return l.side
		}
	}
	return ""
}

// WouldDeny implements Witness.
func (d *drops) WouldDeny(since time.Time, f Flow) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.audits[f] {
		if !l.at.Before(since) {
			return true
		}
	}
	return false
}

// Complete implements Witness.
func (d *drops) Complete() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for node, r := range d.readers {
		if n := r.Lost.Load(); n > 0 {
			errs = append(errs, fmt.Errorf("node %s: %d drop records lost by the NFLOG socket (%d undecodable)", node, n, r.Undecodable.Load()))
		}
		counts, err := kernel.ReadSuppressed(d.fds[node])
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", node, err))
			continue
		}
		for lc, n := range counts {
			if n > 0 {
				errs = append(errs, fmt.Errorf("node %s: the rate limit of chain %s suppressed %d records", node, lc.Name(), n))
			}
		}
	}
	return errors.Join(errs...)
}

// close stops every reader.
func (d *drops) close() {
	d.mu.Lock()
	readers := d.readers
	for _, cancel := range d.cancels {
		cancel()
	}
	d.readers, d.fds, d.flows, d.audits, d.cancels = nil, nil, nil, nil, nil
	d.mu.Unlock()
	for _, r := range readers {
		<-r.Done()
	}
}
