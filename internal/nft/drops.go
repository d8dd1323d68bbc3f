package nft

import (
	"errors"
	"fmt"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/droplog"
)

// Every packet the table denies ends in deny(side). With logging (the
// default) that is a goto to the side's drop chain:
//
//	drop-egress:  limit rate over 100/second burst 100 packets counter drop
//	              log prefix "kube-fence deny egress" group 1617 drop
//
// The limit bounds what a flood of denied packets costs the node (one
// NFLOG record per packet below it); the counter says how many were
// dropped without a record. Each side has its own bucket, so a flood on one
// side does not silence the others. Only new connections reach a deny: the
// forward chain accepts established ones first.

// Defaults of DropLog.
const (
	DefaultLogGroup = 1617
	DefaultLogRate  = 100
	DefaultLogBurst = 100
)

// DropLog configures how the table logs the packets it drops.
type DropLog struct {
	// Off renders plain drops: nothing is logged or counted.
	Off bool
	// Group is the NFLOG group the records go to; 0 means DefaultLogGroup.
	Group uint16
	// Rate is how many records a second each side logs at most, and Burst
	// how many it may log at once above that; 0 means the defaults. Beyond
	// them a denied packet is dropped and counted, not logged.
	Rate, Burst uint32
}

// Defaults returns l with every unset field set.
func (l DropLog) Defaults() DropLog {
	if l.Group == 0 {
		l.Group = DefaultLogGroup
	}
	if l.Rate == 0 {
		l.Rate = DefaultLogRate
	}
	if l.Burst == 0 {
		l.Burst = DefaultLogBurst
	}
	return l
}

// Validate checks l (after Defaults): the kernel refuses a rate limit whose
// bucket overflows.
func (l DropLog) Validate() error {
	const most = 1 << 24
	var errs []error
	if l.Rate > most {
		errs = append(errs, fmt.Errorf("log rate %d/second: at most %d", l.Rate, most))
	}
	if l.Burst > most {
		errs = append(errs, fmt.Errorf("log burst %d: at most %d", l.Burst, most))
	}
	return errors.Join(errs...)
}

// Sides are the places a packet can be denied, in the order of their drop
// chains.
var Sides = []droplog.Side{droplog.SideEgress, droplog.SideIngress, droplog.SideUnknownAddress}

// DropChain names the chain that logs and drops the packets denied on side.
func DropChain(side droplog.Side) string { return "drop-" + string(side) }

// deny is the statement ending every path that denies a packet on side: a
// goto to the side's drop chain, or a plain drop when logging is off. Every
// deny of the table goes through it.
func (r *Renderer) deny(side droplog.Side) stmt {
	if r.DropLog.Off {
		return drop
	}
	return verdict(expr.VerdictGoto, DropChain(side))
}

// dropChains are the chains deny sends packets to; none when logging is off.
func (r *Renderer) dropChains() []*Chain {
	if r.DropLog.Off {
		return nil
	}
	l := r.DropLog.Defaults()
	var out []*Chain
	for _, side := range Sides {
		out = append(out, &Chain{Name: DropChain(side), Rules: []Rule{
			rule(limitOver(l.Rate, l.Burst), counter(), drop),
			rule(nflog(droplog.Prefix(side, false), l.Group), drop),
		}})
	}
	return out
}

// LogChain is one chain that logs under a rate limit: a drop chain, or
// (Audit) a chain logging what audit policies would deny.
type LogChain struct {
	Side  droplog.Side
	Audit bool
}

// Name is the chain's name.
func (l LogChain) Name() string {
	if l.Audit {
		return WouldDenyChain(l.Side)
	}
	return DropChain(l.Side)
}

// LogChains lists every chain that may log, drop chains first.
var LogChains = []LogChain{
	{Side: droplog.SideEgress}, {Side: droplog.SideIngress}, {Side: droplog.SideUnknownAddress},
	{Side: droplog.SideEgress, Audit: true}, {Side: droplog.SideIngress, Audit: true},
}

// Suppressed returns, per logging chain of a table read back from the
// kernel, the packets it did not log because its rate limit was exceeded
// (the counter of its first rule). Chains the table lacks are absent.
func Suppressed(t *Table) map[LogChain]uint64 {
	out := map[LogChain]uint64{}
	for _, lc := range LogChains {
		c := t.Chains[lc.Name()]
		if c == nil || len(c.Rules) == 0 {
			continue
		}
		for _, e := range c.Rules[0].Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				out[lc] = ctr.Packets
			}
		}
	}
	return out
}
