package conntrack

import (
	"fmt"
	"net/netip"

	ct "github.com/ti-mo/conntrack"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// Flow is a connection as the table judged it when its first packet came:
// the initiator's address and port, and the destination after any
// destination NAT (a Service address is already a pod's when the packet
// reaches the filter hooks). Both addresses are of the same family.
type Flow struct {
	Protocol plan.Protocol // TCP or UDP
	Src, Dst netip.AddrPort
}

// Is6 reports whether the flow is IPv6.
func (f Flow) Is6() bool { return f.Src.Addr().Is6() }

func (f Flow) String() string {
	return fmt.Sprintf("%s %s -> %s", f.Protocol, f.Src, f.Dst)
}

// Allowed is the verdict of the table now: whether it would accept the
// first packet of f.
type Allowed func(f Flow) bool

// TCP states from include/uapi/linux/netfilter/nf_conntrack_tcp.h.
const (
	tcpNone     = 0
	tcpTimeWait = 7
	tcpClose    = 8
)

// judged returns the flow of a conntrack entry whose packets the table lets
// through without judging them again, and false for entries that carry no
// more data or are not TCP or UDP over IP. That is every TCP entry from
// SYN_SENT (the SYN-ACK would come back as established) to LAST_ACK, and
// every UDP entry (its replies pass as established).
func judged(e ct.Flow) (Flow, bool) {
	o, r := e.TupleOrig, e.TupleReply
	p := plan.Protocol(o.Proto.Protocol)
	switch {
	case p != plan.TCP && p != plan.UDP:
		return Flow{}, false
	case e.Status.Dying():
		return Flow{}, false
	case p == plan.TCP && e.ProtoInfo.TCP != nil:
		if s := e.ProtoInfo.TCP.State; s == tcpNone || s == tcpTimeWait || s == tcpClose {
			return Flow{}, false
		}
	}
	src := o.IP.SourceAddress.Unmap()
	// The reply comes from where the packets really went: after DNAT.
	dst := o.IP.DestinationAddress.Unmap()
	dport := o.Proto.DestinationPort
	if r.IP.SourceAddress.IsValid() {
		dst, dport = r.IP.SourceAddress.Unmap(), r.Proto.SourcePort
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return Flow{}, false
	}
	return Flow{Protocol: p, Src: netip.AddrPortFrom(src, o.Proto.SourcePort), Dst: netip.AddrPortFrom(dst, dport)}, true
}

// denied picks, one entry at a time, the entries to delete: those judged
// here whose flow allowed now refuses. Entries are never grouped by pod:
// an allowed flow of the same pod stays.
func denied(entries []ct.Flow, allowed Allowed) (cut []ct.Flow, flows []Flow, judgedCount int) {
	for _, e := range entries {
		f, ok := judged(e)
		if !ok {
			continue
		}
		judgedCount++
		if !allowed(f) {
			cut = append(cut, e)
			flows = append(flows, f)
		}
	}
	return cut, flows, judgedCount
}
