package conntrack

import (
	"net/netip"
	"slices"
	"testing"

	ct "github.com/ti-mo/conntrack"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// entry builds a conntrack entry as the kernel reports it: the reply tuple
// mirrors the original one unless replyFrom (DNAT) says otherwise.
func entry(proto uint8, src, dst string, tcpState uint8, replyFrom string) ct.Flow {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	rf := d
	if replyFrom != "" {
		rf = netip.MustParseAddrPort(replyFrom)
	}
	e := ct.Flow{
		TupleOrig: ct.Tuple{IP: ct.IPTuple{SourceAddress: s.Addr(), DestinationAddress: d.Addr()},
			Proto: ct.ProtoTuple{Protocol: proto, SourcePort: s.Port(), DestinationPort: d.Port()}},
		TupleReply: ct.Tuple{IP: ct.IPTuple{SourceAddress: rf.Addr(), DestinationAddress: s.Addr()},
			Proto: ct.ProtoTuple{Protocol: proto, SourcePort: rf.Port(), DestinationPort: s.Port()}},
	}
	if proto == 6 {
		e.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: tcpState}
	}
	return e
}

func flow(p plan.Protocol, src, dst string) Flow {
	return Flow{Protocol: p, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst)}
}

func TestJudged(t *testing.T) {
	const established, synSent, lastAck = 3, 1, 6
	dying := entry(6, "10.0.0.1:4000", "10.0.0.2:80", established, "")
	dying.Status = ct.StatusDying
	cases := []struct {
		name string
		e    ct.Flow
		want Flow
		ok   bool
	}{
		{"established tcp", entry(6, "10.0.0.1:4000", "10.0.0.2:80", established, ""), flow(plan.TCP, "10.0.0.1:4000", "10.0.0.2:80"), true},
		{"syn sent: the syn-ack would pass as established", entry(6, "10.0.0.1:4000", "10.0.0.2:80", synSent, ""), flow(plan.TCP, "10.0.0.1:4000", "10.0.0.2:80"), true},
		{"closing tcp still carries data", entry(6, "10.0.0.1:4000", "10.0.0.2:80", lastAck, ""), flow(plan.TCP, "10.0.0.1:4000", "10.0.0.2:80"), true},
		{"time wait carries nothing", entry(6, "10.0.0.1:4000", "10.0.0.2:80", tcpTimeWait, ""), Flow{}, false},
		{"closed", entry(6, "10.0.0.1:4000", "10.0.0.2:80", tcpClose, ""), Flow{}, false},
		{"dying", dying, Flow{}, false},
		{"udp", entry(17, "[fd00::1]:5353", "[fd00::2]:53", 0, ""), flow(plan.UDP, "[fd00::1]:5353", "[fd00::2]:53"), true},
		{"icmp is not judged here", entry(1, "10.0.0.1:0", "10.0.0.2:0", 0, ""), Flow{}, false},
		{"sctp is not judged here", entry(132, "10.0.0.1:4000", "10.0.0.2:80", 0, ""), Flow{}, false},
		{"dnat: judged at the pod the packets reached", entry(6, "10.0.0.1:4000", "10.43.0.10:443", established, "10.0.0.7:8443"),
			flow(plan.TCP, "10.0.0.1:4000", "10.0.0.7:8443"), true},
		{"mapped addresses read as IPv4", entry(17, "[::ffff:10.0.0.1]:5353", "[::ffff:10.0.0.2]:53", 0, ""), flow(plan.UDP, "10.0.0.1:5353", "10.0.0.2:53"), true},
	}
	for _, c := range cases {
		got, ok := judged(c.e)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: judged = %v %v, want %v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// TestDeniedJudgesEachEntry: two connections of the same pods, one now
// denied, one still allowed: only the denied one goes.
func TestDeniedJudgesEachEntry(t *testing.T) {
	entries := []ct.Flow{
		entry(6, "10.0.0.1:4000", "10.0.0.2:80", 3, ""),
		entry(6, "10.0.0.1:4001", "10.0.0.2:443", 3, ""),
		entry(17, "10.0.0.1:5000", "10.0.0.2:53", 0, ""),
		entry(6, "[fd00::1]:4000", "[fd00::2]:80", 3, ""),
		entry(6, "10.0.0.1:4002", "10.0.0.2:80", tcpTimeWait, ""),
		entry(1, "10.0.0.1:0", "10.0.0.2:0", 0, ""),
	}
	// The new policy allows only port 443 and DNS.
	allowed := func(f Flow) bool { return f.Dst.Port() == 443 || f.Dst.Port() == 53 }
	cut, flows, n := denied(entries, allowed)
	want := []Flow{flow(plan.TCP, "10.0.0.1:4000", "10.0.0.2:80"), flow(plan.TCP, "[fd00::1]:4000", "[fd00::2]:80")}
	if !slices.Equal(flows, want) || len(cut) != 2 || cut[0].TupleOrig != entries[0].TupleOrig || cut[1].TupleOrig != entries[3].TupleOrig {
		t.Errorf("denied flows = %v, want %v", flows, want)
	}
	if n != 4 {
		t.Errorf("judged %d entries, want 4 (the TIME_WAIT and ICMP ones are not judged)", n)
	}
	if cut, _, _ := denied(entries, func(Flow) bool { return true }); len(cut) != 0 {
		t.Errorf("everything allowed, yet %d entries would be cut", len(cut))
	}
}
