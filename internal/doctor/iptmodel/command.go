package iptmodel

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// command is the iptables rule a decoder built, to show what a misread
// rule turns into.
type command struct {
	family               byte
	unstatableWhy        string // set by the decoder for readings no option states
	icmpAnyNumeric       bool   // 1.8.11 prints "any type, code C" as 255/C
	proto                byte
	protoInv             bool
	src, dst             []byte
	srcMask, dstMask     []byte
	srcInv, dstInv       bool
	in, out              string
	inInv, outInv        bool
	frag, fragInv        bool
	sport, dport         *portRange
	hasTCPFlags          bool
	tcpFlags, tcpMask    byte
	tcpFlagsInv          bool
	hasICMP, hasICMPCode bool
	icmpType, icmpCode   int
	matches              []xtMatch
	target               string
	gotoFlag             bool
}

type portRange struct {
	lo, hi uint16
	inv    bool
}

type xtMatch struct {
	name    string
	info    xt.InfoAny
	limit   *expr.Limit
	mark    uint32
	mask    uint32
	pkttype byte
	inv     bool
	ttlOp   expr.CmpOp
	ttl     byte
}

func xtTarget(e *expr.Target) string { return e.Name }

func itoa(i int) string { return strconv.Itoa(i) }

func (c *command) addPort(src bool, op expr.CmpOp, lo, hi uint16) {
	p := &c.dport
	if src {
		p = &c.sport
	}
	if *p == nil {
		*p = &portRange{0, 65535, false}
	}
	switch op {
	case expr.CmpOpEq:
		(*p).lo, (*p).hi = lo, hi
	case expr.CmpOpNeq:
		(*p).lo, (*p).hi, (*p).inv = lo, hi, true
	case expr.CmpOpLt:
		(*p).hi = max(lo-1, 1)
	case expr.CmpOpLte:
		(*p).hi = lo
	case expr.CmpOpGt:
		(*p).lo = min(lo+1, 65535)
	case expr.CmpOpGte:
		(*p).lo = lo
	}
}

// protoNames are the names iptables-save prints (its own table, then
// Debian's /etc/protocols).
var protoNames = map[byte]string{1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 58: "ipv6-icmp", 108: "ipcomp", 132: "sctp", 47: "gre", 50: "esp", 51: "ah", 136: "udplite"}

func not(inv bool) string {
	if inv {
		return "! "
	}
	return ""
}

// addr renders an address the way iptables-save does. nft compares only
// the bytes of a byte-aligned prefix (10.0.0.0/8 is a 1-byte compare), so
// a short value is a prefix of its length; a mask that is no prefix is
// printed whole.
func addr(a, mask []byte, size int) string {
	full := make([]byte, size)
	copy(full, a)
	m := make([]byte, size)
	switch {
	case mask != nil:
		copy(m, mask)
	default:
		for i := 0; i < len(a) && i < size; i++ {
			m[i] = 0xff
		}
	}
	ip := net.IP(full)
	if ones, bits := net.IPMask(m).Size(); bits != 0 {
		return fmt.Sprintf("%s/%d", ip, ones)
	}
	return fmt.Sprintf("%s/%s", ip, net.IP(m))
}

// String renders the command the way iptables-save prints a rule, without
// the leading "-A CHAIN".
func (c *command) String() string {
	var p []string
	size := 4
	if c.family == unix.NFPROTO_IPV6 {
		size = 16
	}
	if c.src != nil {
		p = append(p, not(c.srcInv)+"-s "+addr(c.src, c.srcMask, size))
	}
	if c.dst != nil {
		p = append(p, not(c.dstInv)+"-d "+addr(c.dst, c.dstMask, size))
	}
	if c.in != "" {
		p = append(p, not(c.inInv)+"-i "+c.in)
	}
	if c.out != "" {
		p = append(p, not(c.outInv)+"-o "+c.out)
	}
	if c.proto != 0 {
		name, ok := protoNames[c.proto]
		if !ok {
			name = itoa(int(c.proto))
		}
		p = append(p, not(c.protoInv)+"-p "+name)
	}
	if c.frag {
		p = append(p, not(c.fragInv)+"-f")
	}
	if c.sport != nil || c.dport != nil || c.hasTCPFlags {
		m := []string{"-m " + protoNames[c.proto]}
		for _, pr := range []struct {
			opt string
			r   *portRange
		}{{"--sport", c.sport}, {"--dport", c.dport}} {
			if pr.r == nil {
				continue
			}
			v := itoa(int(pr.r.lo))
			if pr.r.hi != pr.r.lo {
				v += ":" + itoa(int(pr.r.hi))
			}
			m = append(m, not(pr.r.inv)+pr.opt+" "+v)
		}
		if c.hasTCPFlags {
			m = append(m, fmt.Sprintf("%s--tcp-flags %s %s", not(c.tcpFlagsInv), tcpFlagNames(c.tcpMask), tcpFlagNames(c.tcpFlags)))
		}
		p = append(p, strings.Join(m, " "))
	}
	if c.hasICMP {
		t := "-m icmp --icmp-type "
		if c.family == unix.NFPROTO_IPV6 {
			t = "-m icmp6 --icmpv6-type "
		}
		switch {
		case c.icmpType == 255 && c.family != unix.NFPROTO_IPV6 && !(c.icmpAnyNumeric && c.hasICMPCode):
			t += "any"
		case c.hasICMPCode:
			t += itoa(c.icmpType) + "/" + itoa(c.icmpCode)
		default:
			t += itoa(c.icmpType)
		}
		p = append(p, t)
	}
	for _, m := range c.matches {
		p = append(p, m.String())
	}
	if c.target != "" {
		j := "-j "
		if c.gotoFlag {
			j = "-g "
		}
		p = append(p, j+c.target)
	}
	return strings.Join(p, " ")
}

func (m xtMatch) String() string {
	switch m.name {
	case "mark":
		s := fmt.Sprintf("-m mark %s--mark 0x%x", not(m.inv), m.mark)
		if m.mask != 0xffffffff {
			s += fmt.Sprintf("/0x%x", m.mask)
		}
		return s
	case "pkttype":
		name := map[byte]string{0: "unicast", 1: "broadcast", 2: "multicast"}[m.pkttype]
		if name == "" {
			name = itoa(int(m.pkttype))
		}
		return fmt.Sprintf("-m pkttype %s--pkt-type %s", not(m.inv), name)
	case "ttl", "hl":
		op := map[expr.CmpOp]string{expr.CmpOpEq: "eq", expr.CmpOpNeq: "eq", expr.CmpOpLt: "lt", expr.CmpOpGt: "gt", expr.CmpOpLte: "lt", expr.CmpOpGte: "gt"}[m.ttlOp]
		return fmt.Sprintf("-m %s %s--%s-%s %d", m.name, not(m.ttlOp == expr.CmpOpNeq), m.name, op, m.ttl)
	case "limit":
		if m.limit != nil && m.limit.Rate != 0 {
			s := fmt.Sprintf("-m limit --limit %d/%s", m.limit.Rate, map[expr.LimitTime]string{1: "sec", 60: "min", 3600: "hour", 86400: "day"}[m.limit.Unit])
			if m.limit.Burst != 0 && m.limit.Burst != 5 { // 5: the match's default, not printed
				s += fmt.Sprintf(" --limit-burst %d", m.limit.Burst)
			}
			return s
		}
		return "-m limit"
	case "comment":
		if c, ok := m.info.(*xt.Comment); ok {
			return "-m comment --comment " + strconv.Quote(string(*c))
		}
	case "connmark":
		if u, ok := m.info.(*xt.Unknown); ok && len(*u) >= 9 {
			b := []byte(*u)
			s := fmt.Sprintf("-m connmark %s--mark 0x%x", not(b[8] != 0), le32(b[0:4]))
			if mask := le32(b[4:8]); mask != 0xffffffff {
				s += fmt.Sprintf("/0x%x", mask)
			}
			return s
		}
	case "dscp":
		if u, ok := m.info.(*xt.Unknown); ok && len(*u) >= 2 {
			return fmt.Sprintf("-m dscp %s--dscp 0x%02x", not((*u)[1] != 0), (*u)[0])
		}
	case "addrtype":
		if a, ok := m.info.(*xt.AddrTypeV1); ok {
			s := "-m addrtype"
			if a.Source != 0 {
				s += " " + not(a.Flags&1 != 0) + "--src-type " + addrTypes(a.Source)
			}
			if a.Dest != 0 {
				s += " " + not(a.Flags&2 != 0) + "--dst-type " + addrTypes(a.Dest)
			}
			return s
		}
	case "conntrack":
		if ct, ok := m.info.(*xt.ConntrackMtinfo3); ok && ct.MatchFlags&uint16(xt.ConntrackState) != 0 {
			return "-m conntrack " + not(ct.InvertFlags&uint16(xt.ConntrackState) != 0) + "--ctstate " + ctStateNames(ct.StateMask)
		}
	}
	return "-m " + m.name
}

func ctStateNames(mask uint16) string {
	var n []string
	for _, s := range []struct {
		bit  uint16
		name string
	}{{1, "INVALID"}, {8, "NEW"}, {4, "RELATED"}, {2, "ESTABLISHED"}, {64, "UNTRACKED"}} {
		if mask&s.bit != 0 {
			n = append(n, s.name)
		}
	}
	return strings.Join(n, ",")
}

var addrTypeNames = []string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}

func addrTypes(mask uint16) string {
	var n []string
	for i, name := range addrTypeNames {
		if mask&(1<<uint(i)) != 0 {
			n = append(n, name)
		}
	}
	return strings.Join(n, ",")
}

// unstatable says why no iptables command line can state the rule as
// read, or "" when one can: -C/-D with any spec then miss the rule, and
// iptables-save prints something else.
func (c *command) unstatable() string {
	switch {
	case c.unstatableWhy != "":
		return c.unstatableWhy
	case c.outInv && c.out == "", c.inInv && c.in == "":
		return "an inverted empty interface name"
	case c.protoInv && c.proto == 0:
		return "an inverted protocol 0"
	}
	for _, m := range c.matches {
		if m.name == "limit" && m.limit != nil && limitTooFast(m.limit) {
			return "a packet rate above the 10000/s iptables' limit match accepts"
		}
	}
	return ""
}

func limitTooFast(l *expr.Limit) bool {
	unit := uint64(l.Unit)
	if unit == 0 {
		unit = 1
	}
	return l.Rate > 10000*unit
}

// tcpFlagNames prints flags as iptables-save does: FIN,SYN,RST,PSH,ACK,URG
// in that order, NONE for none.
func tcpFlagNames(f byte) string {
	var n []string
	for i, name := range []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG"} {
		if f&(1<<uint(i)) != 0 {
			n = append(n, name)
		}
	}
	if len(n) == 0 {
		return "NONE"
	}
	return strings.Join(n, ",")
}
