package nftext

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Verdict prints a verdict as nft does: accept, drop, jump CHAIN, ...
func Verdict(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictBreak:
		return "break"
	case expr.VerdictQueue:
		return "queue"
	case expr.VerdictStolen:
		return "stolen"
	}
	return fmt.Sprintf("verdict %d", v.Kind)
}

// byteUnit renders a byte count the way nft does: the largest of bytes,
// kbytes, mbytes that divides it.
func byteUnit(n uint64) string {
	switch {
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d mbytes", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d kbytes", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

var limitUnits = map[expr.LimitTime]string{1: "second", 60: "minute", 3600: "hour", 86400: "day", 604800: "week"}

func limitText(e *expr.Limit) string {
	t := "limit rate "
	if e.Over {
		t += "over "
	}
	unit := limitUnits[e.Unit]
	if unit == "" {
		unit = fmt.Sprintf("%ds", e.Unit)
	}
	if e.Type == expr.LimitTypePktBytes {
		t += byteUnit(e.Rate) + "/" + unit
		if e.Burst != 0 {
			t += " burst " + byteUnit(uint64(e.Burst))
		}
		return t
	}
	t += fmt.Sprintf("%d/%s", e.Rate, unit)
	if e.Burst != 5 && e.Burst != 0 {
		t += fmt.Sprintf(" burst %d packets", e.Burst)
	}
	return t
}

var logLevels = []string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit"}

func logText(e *expr.Log) string {
	parts := []string{"log"}
	has := func(attr uint32) bool { return e.Key&(1<<attr) != 0 }
	if has(unix.NFTA_LOG_PREFIX) {
		parts = append(parts, "prefix "+strconv.Quote(string(e.Data)))
	}
	if has(unix.NFTA_LOG_GROUP) {
		parts = append(parts, fmt.Sprintf("group %d", e.Group))
	}
	if has(unix.NFTA_LOG_SNAPLEN) {
		parts = append(parts, fmt.Sprintf("snaplen %d", e.Snaplen))
	}
	if has(unix.NFTA_LOG_QTHRESHOLD) {
		parts = append(parts, fmt.Sprintf("queue-threshold %d", e.QThreshold))
	}
	if has(unix.NFTA_LOG_LEVEL) && int(e.Level) < len(logLevels) && e.Level != expr.LogLevelWarning {
		parts = append(parts, "level "+logLevels[e.Level])
	}
	if has(unix.NFTA_LOG_FLAGS) {
		if e.Flags&expr.LogFlagsMask == expr.LogFlagsMask {
			parts = append(parts, "flags all")
		} else {
			var fl []string
			for _, f := range []struct {
				bit  expr.LogFlags
				name string
			}{{expr.LogFlagsTCPSeq, "tcp sequence"}, {expr.LogFlagsTCPOpt, "tcp options"}, {expr.LogFlagsIPOpt, "ip options"}, {expr.LogFlagsUID, "skuid"}, {expr.LogFlagsMACDecode, "ether"}} {
				if e.Flags&f.bit != 0 {
					fl = append(fl, f.name)
				}
			}
			if len(fl) > 0 {
				parts = append(parts, "flags "+strings.Join(fl, ","))
			}
		}
	}
	return strings.Join(parts, " ")
}

func (s *state) rejectText(e *expr.Reject) string {
	switch e.Type {
	case unix.NFT_REJECT_TCP_RST:
		return "reject with tcp reset"
	case unix.NFT_REJECT_ICMPX_UNREACH:
		if e.Code == unix.NFT_REJECT_ICMPX_PORT_UNREACH {
			return "reject"
		}
		return "reject with icmpx " + map[uint8]string{0: "no-route", 1: "port-unreachable", 2: "host-unreachable", 3: "admin-prohibited"}[e.Code]
	}
	if s.o.Family == unix.NFPROTO_IPV6 {
		if e.Code == 4 { // ICMPV6 port unreachable, nft's default
			return "reject"
		}
		return fmt.Sprintf("reject with icmpv6 %d", e.Code)
	}
	if e.Code == 3 {
		return "reject"
	}
	return "reject with icmp " + format(kICMPCode, []byte{e.Code})
}

// natTarget renders the address and port registers of a nat statement.
func (s *state) natTarget(fam uint32, addrMin, addrMax, protoMin, protoMax uint32) string {
	var t string
	addrKind := kIPv4
	if fam == unix.NFPROTO_IPV6 {
		addrKind = kIPv6
	}
	if addrMin != 0 {
		t = s.value(s.get(addrMin), addrKind)
		if addrMax != 0 && addrMax != addrMin {
			t += "-" + s.value(s.get(addrMax), addrKind)
		}
		if addrKind == kIPv6 && protoMin != 0 {
			t = "[" + t + "]"
		}
	}
	if protoMin != 0 {
		t += ":" + s.value(s.get(protoMin), kIntBE)
		if protoMax != 0 && protoMax != protoMin {
			t += "-" + s.value(s.get(protoMax), kIntBE)
		}
	}
	return t
}

func natFlags(random, fully, persistent bool) string {
	var f []string
	if random {
		f = append(f, "random")
	}
	if fully {
		f = append(f, "fully-random")
	}
	if persistent {
		f = append(f, "persistent")
	}
	if len(f) == 0 {
		return ""
	}
	return " " + strings.Join(f, ",")
}

func (s *state) statement(e expr.Any) {
	switch e := e.(type) {
	case *expr.Verdict:
		s.emit(Verdict(e))
	case *expr.Counter:
		s.emit(fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
	case *expr.Limit:
		s.emit(limitText(e))
	case *expr.Log:
		s.emit(logText(e))
	case *expr.Quota:
		t := "quota "
		if e.Over {
			t += "over "
		}
		t += byteUnit(e.Bytes)
		if e.Consumed != 0 {
			t += " used " + byteUnit(e.Consumed)
		}
		s.emit(t)
	case *expr.Reject:
		if e.Type == unix.NFT_REJECT_TCP_RST && s.l4 == "tcp" && s.l4At >= 0 {
			s.out[s.l4At].dropped = true // implied by "with tcp reset"
		}
		s.emit(s.rejectText(e))
	case *expr.NAT:
		kw := map[expr.NATType]string{expr.NATTypeSourceNAT: "snat", expr.NATTypeDestNAT: "dnat"}[e.Type]
		if s.o.Family == unix.NFPROTO_INET {
			kw += map[uint32]string{unix.NFPROTO_IPV4: " ip", unix.NFPROTO_IPV6: " ip6"}[e.Family]
		}
		s.emit(kw + " to " + s.natTarget(e.Family, e.RegAddrMin, e.RegAddrMax, e.RegProtoMin, e.RegProtoMax) + natFlags(e.Random, e.FullyRandom, e.Persistent))
	case *expr.Masq:
		t := "masquerade"
		if e.ToPorts {
			t += " to " + s.natTarget(0, 0, 0, e.RegProtoMin, e.RegProtoMax)
		}
		s.emit(t + natFlags(e.Random, e.FullyRandom, e.Persistent))
	case *expr.Redir:
		t := "redirect"
		if e.RegisterProtoMin != 0 {
			t += " to " + s.natTarget(0, 0, 0, e.RegisterProtoMin, e.RegisterProtoMax)
		}
		s.emit(t)
	case *expr.Notrack:
		s.emit("notrack")
	case *expr.Dynset:
		op := map[uint32]string{0: "add", 1: "update", 2: "delete"}[e.Operation]
		key := s.get(e.SrcRegKey).f.name
		if e.Timeout != 0 {
			key += " timeout " + durationText(e.Timeout)
		}
		s.emit(fmt.Sprintf("%s @%s { %s }", op, e.SetName, key))
	case *expr.Objref:
		kind := map[int]string{1: "counter", 2: "quota", 3: "ct helper", 4: "limit", 5: "ct timeout", 6: "meta secmark", 7: "ct expectation", 8: "synproxy"}[e.Type]
		if e.Type == 3 || e.Type == 5 || e.Type == 6 || e.Type == 7 {
			s.emit(fmt.Sprintf("%s set %q", kind, e.Name))
		} else {
			s.emit(fmt.Sprintf("%s name %q", kind, e.Name))
		}
	case *expr.Connlimit:
		t := "ct count "
		if e.Flags&1 != 0 {
			t += "over "
		}
		s.emit(fmt.Sprintf("%s%d", t, e.Count))
	case *expr.Queue:
		t := "queue"
		if e.Flag&expr.QueueFlagBypass != 0 {
			t += " bypass"
		}
		s.emit(fmt.Sprintf("%s num %d", t, e.Num))
	case *expr.Dup:
		t := "dup to " + s.value(s.get(e.RegAddr), kIPv4)
		if e.IsRegDevSet {
			t += " device " + s.value(s.get(e.RegDev), kIfindex)
		}
		s.emit(t)
	case *expr.SynProxy:
		t := "synproxy"
		if e.MssValueSet {
			t += fmt.Sprintf(" mss %d", e.Mss)
		}
		if e.WscaleValueSet {
			t += fmt.Sprintf(" wscale %d", e.Wscale)
		}
		s.emit(t)
	case *expr.TProxy:
		s.emit("tproxy to " + s.natTarget(uint32(e.Family), e.RegAddr, 0, e.RegPort, 0))
	case *expr.FlowOffload:
		s.emit("flow add @" + e.Name)
	case *expr.Match:
		s.emit(fmt.Sprintf("xt match %q", e.Name))
	case *expr.Target:
		s.emit(fmt.Sprintf("xt target %q", e.Name))
	case *Undecoded:
		s.emit("[" + e.Name + "]")
	default:
		s.emit(fmt.Sprintf("[%T]", e))
	}
}

func durationText(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return d.String()
}
