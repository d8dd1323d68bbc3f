package nftext

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// kind says how a register's bytes are formatted.
type kind int

const (
	kInt        kind = iota // host-endian unsigned decimal
	kIntBE                  // network-endian unsigned decimal
	kHex                    // host-endian 0x%08x (marks)
	kHexBE                  // network-endian hex
	kString                 // NUL-padded string, quoted (interface names)
	kIfindex                // host-endian interface index, printed as its name when known
	kIPv4                   // IPv4 address
	kIPv6                   // IPv6 address
	kEther                  // link-layer address
	kCtState                // conntrack state bitmask
	kCtStatus               // conntrack status bitmask
	kCtDir                  // conntrack direction
	kL4Proto                // IP protocol number
	kEtherType              // network-endian ethertype
	kNfProto                // netfilter family number
	kFibType                // route type (fib ... type)
	kPktType                // packet type
	kIfType                 // ARPHRD_* interface type
	kTCPFlags               // TCP flags bitmask
	kDSCP                   // DSCP code point
	kECN                    // ECN code point
	kICMPType               // ICMP type
	kICMPCode               // ICMP code
	kICMPv6Type             // ICMPv6 type
	kVerdict                // (maps) verdicts are rendered elsewhere
	kBool                   // exists / missing
	kPriority               // major:minor
	kUID                    // user id
	kFibOIF                 // fib result oif
	kTimeNS                 // nanoseconds since the epoch
	kDay                    // day of week
	kHour                   // seconds since midnight
	kMillis                 // milliseconds, printed as a duration
	kCtLabel                // conntrack label bit
	kIGMPType               // IGMP type
)

var ctStates = []struct {
	bit  uint32
	name string
}{{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}}

// nft prints ct status names in bit order.
var ctStatuses = []string{"expected", "seen-reply", "assured", "confirmed", "snat", "dnat", "dying"}

var l4Protos = map[uint64]string{1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 108: "comp", 132: "sctp", 136: "udplite"}

var etherTypes = map[uint64]string{0x0800: "ip", 0x0806: "arp", 0x86dd: "ip6", 0x8100: "8021q", 0x88a8: "8021ad", 0x8035: "rarp"}

var nfProtos = map[uint64]string{2: "ipv4", 10: "ipv6"}

var fibTypes = []string{"unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve"}

var pktTypes = map[uint64]string{0: "host", 1: "broadcast", 2: "multicast", 3: "other"}

var ifTypes = map[uint64]string{1: "ether", 24: "ieee1394", 772: "loopback", 776: "sit", 768: "ipip", 769: "ip6tnl", 778: "gre", 823: "ip6gre", 65534: "none"}

var tcpFlagNames = []string{"fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"}

var dscpNames = map[uint64]string{0: "cs0", 8: "cs1", 16: "cs2", 24: "cs3", 32: "cs4", 40: "cs5", 48: "cs6", 56: "cs7",
	10: "af11", 12: "af12", 14: "af13", 18: "af21", 20: "af22", 22: "af23", 26: "af31", 28: "af32", 30: "af33",
	34: "af41", 36: "af42", 38: "af43", 46: "ef", 1: "lephb", 44: "va"}

var ecnNames = map[uint64]string{0: "not-ect", 1: "ect1", 2: "ect0", 3: "ce"}

var icmpTypes = map[uint64]string{0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect",
	8: "echo-request", 9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem",
	13: "timestamp-request", 14: "timestamp-reply", 15: "info-request", 16: "info-reply", 17: "address-mask-request", 18: "address-mask-reply"}

var icmpCodes = map[uint64]string{0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable", 3: "port-unreachable",
	4: "frag-needed", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}

var icmp6Types = map[uint64]string{1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
	128: "echo-request", 129: "echo-reply", 133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert"}

// uintOf reads up to 8 bytes as an unsigned number in the given order.
func uintOf(b []byte, bigEndian bool) uint64 {
	var buf [8]byte
	if len(b) > 8 {
		b = b[:8]
	}
	if bigEndian {
		copy(buf[8-len(b):], b)
		return binary.BigEndian.Uint64(buf[:])
	}
	copy(buf[:], b)
	return binary.LittleEndian.Uint64(buf[:])
}

func named(m map[uint64]string, v uint64) string {
	if n, ok := m[v]; ok {
		return n
	}
	return strconv.FormatUint(v, 10)
}

func bitNames(v uint64, names func(bit uint) (string, bool)) string {
	if v == 0 {
		return "0x0"
	}
	var parts []string
	for bit := uint(0); bit < 64; bit++ {
		if v&(1<<bit) == 0 {
			continue
		}
		if n, ok := names(bit); ok {
			parts = append(parts, n)
		} else {
			parts = append(parts, fmt.Sprintf("0x%x", uint64(1)<<bit))
		}
	}
	return strings.Join(parts, ",")
}

// format renders constant bytes as a value of kind k.
func format(k kind, b []byte) string {
	switch k {
	case kIntBE:
		return strconv.FormatUint(uintOf(b, true), 10)
	case kHex:
		return fmt.Sprintf("0x%08x", uintOf(b, false))
	case kHexBE:
		return fmt.Sprintf("0x%0*x", len(b)*2, uintOf(b, true))
	case kString:
		s := strings.TrimRight(string(b), "\x00")
		if len(b) > 0 && b[len(b)-1] != 0 && len(b) < 16 {
			s += "*" // a prefix match, as iptables' "eth+" writes it
		}
		return strconv.Quote(s)
	case kIfindex:
		idx := int(uintOf(b, false))
		if ifc, err := net.InterfaceByIndex(idx); err == nil {
			return strconv.Quote(ifc.Name)
		}
		return strconv.Itoa(idx)
	case kIPv4:
		if len(b) == 4 {
			return net.IP(b).String()
		}
	case kIPv6:
		if len(b) == 16 {
			return net.IP(b).String()
		}
	case kEther:
		if len(b) == 6 {
			return net.HardwareAddr(b).String()
		}
	case kCtState:
		v := uintOf(b, false)
		return bitNames(v, func(bit uint) (string, bool) {
			for _, s := range ctStates {
				if s.bit == 1<<bit {
					return s.name, true
				}
			}
			return "", false
		})
	case kCtStatus:
		return bitNames(uintOf(b, false), func(bit uint) (string, bool) {
			if int(bit) < len(ctStatuses) {
				return ctStatuses[bit], true
			}
			return "", false
		})
	case kCtDir:
		switch uintOf(b, false) {
		case 0:
			return "original"
		case 1:
			return "reply"
		}
	case kL4Proto:
		return named(l4Protos, uintOf(b, false))
	case kEtherType:
		return named(etherTypes, uintOf(b, true))
	case kNfProto:
		return named(nfProtos, uintOf(b, false))
	case kFibType:
		if v := uintOf(b, false); v < uint64(len(fibTypes)) {
			return fibTypes[v]
		}
	case kPktType:
		return named(pktTypes, uintOf(b, false))
	case kIfType:
		return named(ifTypes, uintOf(b, false))
	case kTCPFlags:
		return bitNames(uintOf(b, true), func(bit uint) (string, bool) {
			if int(bit) < len(tcpFlagNames) {
				return tcpFlagNames[bit], true
			}
			return "", false
		})
	case kDSCP:
		return named(dscpNames, uintOf(b, true))
	case kECN:
		return named(ecnNames, uintOf(b, true))
	case kICMPType:
		return named(icmpTypes, uintOf(b, true))
	case kICMPCode:
		return named(icmpCodes, uintOf(b, true))
	case kICMPv6Type:
		return named(icmp6Types, uintOf(b, true))
	case kPriority:
		v := uintOf(b, false)
		return fmt.Sprintf("%x:%x", v>>16, v&0xffff)
	case kBool:
		if uintOf(b, false) != 0 {
			return "exists"
		}
		return "missing"
	case kFibOIF:
		return format(kIfindex, b)
	case kTimeNS:
		return strconv.Quote(time.Unix(0, int64(uintOf(b, false))).UTC().Format("2006-01-02 15:04:05"))
	case kDay:
		if v := uintOf(b, false); v < 7 {
			return strconv.Quote(time.Weekday(v).String())
		}
	case kHour:
		v := uintOf(b, false)
		if v%60 == 0 {
			return strconv.Quote(fmt.Sprintf("%02d:%02d", v/3600, v/60%60))
		}
		return strconv.Quote(fmt.Sprintf("%02d:%02d:%02d", v/3600, v/60%60, v%60))
	case kMillis:
		return durationText(time.Duration(uintOf(b, false)) * time.Millisecond)
	case kCtLabel:
		v := b
		for i := len(v)*8 - 1; i >= 0; i-- {
			if v[i/8]&(1<<uint(i%8)) != 0 {
				return strconv.Itoa(i)
			}
		}
		return "0"
	case kIGMPType:
		return named(igmpTypes, uintOf(b, true))
	}
	return strconv.FormatUint(uintOf(b, false), 10)
}

var igmpTypes = map[uint64]string{0x11: "membership-query", 0x12: "membership-report-v1", 0x16: "membership-report-v2", 0x17: "leave-group", 0x22: "membership-report-v3"}
