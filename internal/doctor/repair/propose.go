package repair

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// Proposal is an exact rewrite of one rule.
type Proposal struct {
	Old      nlrules.Rule
	New      []nlrules.RawExpr
	Describe string // the rewritten rule, iptables-save style
}

// rewrite matches native expressions starting at exprs[i] and returns how
// many it replaces and the xt match standing for them.
type rewrite func(family byte, ch nlrules.Chain, exprs []expr.Any, i int) (n int, m *expr.Match)

var rewrites = []rewrite{ctState, ctMark, fibAddrtype, ipDSCP}

// Propose returns the rewrite of r, or nil and why none is offered.
func Propose(r nlrules.Rule, ch nlrules.Chain) (*Proposal, string) {
	exprs := r.Decoded()
	if r.Family != unix.NFPROTO_IPV4 && r.Family != unix.NFPROTO_IPV6 {
		return nil, "not in an iptables table"
	}
	var out []nlrules.RawExpr
	changed := false
	for i := 0; i < len(exprs); {
		var n int
		var m *expr.Match
		for _, rw := range rewrites {
			if n, m = rw(r.Family, ch, exprs, i); m != nil {
				break
			}
		}
		if m == nil {
			out = append(out, r.Exprs[i])
			i++
			continue
		}
		dreg := loadReg(exprs[i])
		if readLater(exprs[i+n:], dreg) {
			return nil, fmt.Sprintf("a later expression reads register %d that the rewritten expressions load", dreg)
		}
		raw, err := nlrules.Encode(r.Family, "match", m)
		if err != nil {
			return nil, err.Error()
		}
		out = append(out, raw)
		i += n
		changed = true
	}
	if !changed {
		return nil, "no exact iptables (xt) equivalent is known for the expressions at fault; the rule is left alone"
	}
	p := &Proposal{Old: r, New: out}
	probe := nlrules.Rule{Family: r.Family, Exprs: out}
	decoded := probe.Decoded()
	for _, v := range iptmodel.Versions {
		if res := iptmodel.Rule(v, r.Family, decoded); res.Broken() {
			return nil, fmt.Sprintf("the xt rewrite would still trouble iptables %s", v)
		}
	}
	p.Describe = iptmodel.Command(iptmodel.V189, r.Family, decoded)
	return p, ""
}

func loadReg(e expr.Any) uint32 {
	switch e := e.(type) {
	case *expr.Ct:
		return e.Register
	case *expr.Fib:
		return e.Register
	case *expr.Payload:
		return e.DestRegister
	}
	return 0
}

// readLater reports whether an expression after the rewritten ones may read
// register r before something overwrites it. Unknown kinds count as reads.
func readLater(rest []expr.Any, r uint32) bool {
	for _, e := range rest {
		switch e := e.(type) {
		case *expr.Counter, *expr.Verdict, *expr.Match, *expr.Target, *expr.Log, *expr.Limit, *expr.Quota, *expr.Reject, *expr.Notrack:
		case *expr.Cmp:
			if e.Register == r {
				return true
			}
		case *expr.Bitwise:
			if e.SourceRegister == r {
				return true
			}
		case *expr.Lookup:
			if e.SourceRegister == r {
				return true
			}
		case *expr.Range:
			if e.Register == r {
				return true
			}
		case *expr.Meta:
			if e.SourceRegister {
				return true
			}
			if e.Register == r {
				return false
			}
		case *expr.Payload:
			if e.OperationType == expr.PayloadWrite {
				return true
			}
			if e.DestRegister == r {
				return false
			}
		case *expr.Ct:
			if e.SourceRegister {
				return true
			}
			if e.Register == r {
				return false
			}
		case *expr.Immediate:
			if e.Register == r {
				return false
			}
		default:
			return true
		}
	}
	return false
}

// maskCmp reads `[bitwise reg & M ^ 0] [cmp op reg V]` or `[cmp op reg V]`
// after a load into reg at exprs[i]; n counts the expressions used.
func maskCmp(exprs []expr.Any, i int, reg uint32, size int) (mask, val []byte, op expr.CmpOp, n int, ok bool) {
	j := i + 1
	if j < len(exprs) {
		if b, isB := exprs[j].(*expr.Bitwise); isB {
			if b.SourceRegister != reg || b.DestRegister != reg || len(b.Mask) != size || !zero(b.Xor) {
				return nil, nil, 0, 0, false
			}
			mask = b.Mask
			j++
		}
	}
	if j >= len(exprs) {
		return nil, nil, 0, 0, false
	}
	c, isC := exprs[j].(*expr.Cmp)
	if !isC || c.Register != reg || len(c.Data) != size || (c.Op != expr.CmpOpEq && c.Op != expr.CmpOpNeq) {
		return nil, nil, 0, 0, false
	}
	return mask, c.Data, c.Op, j - i + 1, true
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func singleBit(v uint32) bool { return v != 0 && v&(v-1) == 0 }

// ctState: `ct state X` is xt_conntrack's --ctstate: both test one state
// bit (invalid 1, established 2, related 4, new 8, untracked 64, the same
// values) computed the same way from the packet's conntrack entry.
func ctState(family byte, _ nlrules.Chain, exprs []expr.Any, i int) (int, *expr.Match) {
	ct, ok := exprs[i].(*expr.Ct)
	if !ok || ct.SourceRegister || ct.Key != expr.CtKeySTATE || ct.Direction != 0 {
		return 0, nil
	}
	mask, val, op, n, ok := maskCmp(exprs, i, ct.Register, 4)
	if !ok {
		return 0, nil
	}
	v := binary.LittleEndian.Uint32(val)
	var stateMask uint32
	invert := false
	switch {
	case mask != nil && v == 0: // (state & M) != 0  or  == 0
		stateMask = binary.LittleEndian.Uint32(mask)
		invert = op == expr.CmpOpEq
	case mask == nil && singleBit(v): // state == V (one bit: same as state & V)
		stateMask = v
		invert = op == expr.CmpOpNeq
	default:
		return 0, nil
	}
	if stateMask == 0 || stateMask&^0x4f != 0 {
		return 0, nil
	}
	info := make([]byte, 168)
	off := 4 * 16 * 2                            // orig/repl src/dst addresses and masks (union nf_inet_addr)
	off += 8                                     // expires min, max
	off += 2 * 5                                 // l4proto, four ports
	binary.LittleEndian.PutUint16(info[off:], 1) // match_flags: XT_CONNTRACK_STATE
	if invert {
		binary.LittleEndian.PutUint16(info[off+2:], 1)
	}
	binary.LittleEndian.PutUint16(info[off+4:], uint16(stateMask))
	u := xt.Unknown(info)
	return n, &expr.Match{Name: "conntrack", Rev: 3, Info: &u}
}

// ctMark: `ct mark [& M] == V` is xt_connmark's --mark V/M; both fail to
// match, even inverted, when the packet has no conntrack entry.
func ctMark(family byte, _ nlrules.Chain, exprs []expr.Any, i int) (int, *expr.Match) {
	ct, ok := exprs[i].(*expr.Ct)
	if !ok || ct.SourceRegister || ct.Key != expr.CtKeyMARK || ct.Direction != 0 {
		return 0, nil
	}
	mask, val, op, n, ok := maskCmp(exprs, i, ct.Register, 4)
	if !ok {
		return 0, nil
	}
	info := make([]byte, 16)
	copy(info[0:4], val)
	if mask != nil {
		copy(info[4:8], mask)
	} else {
		binary.LittleEndian.PutUint32(info[4:8], 0xffffffff)
	}
	if op == expr.CmpOpNeq {
		info[8] = 1
	}
	u := xt.Unknown(info)
	return n, &expr.Match{Name: "connmark", Rev: 1, Info: &u}
}

// fibAddrtype: in ip tables, `fib daddr type T` and xt_addrtype rev 1
// --dst-type T look the address up the same way (local table, no device).
func fibAddrtype(family byte, _ nlrules.Chain, exprs []expr.Any, i int) (int, *expr.Match) {
	f, ok := exprs[i].(*expr.Fib)
	if !ok || family != unix.NFPROTO_IPV4 || !f.ResultADDRTYPE || f.FlagIIF || f.FlagOIF || f.FlagMARK || f.FlagPRESENT || f.FlagSADDR == f.FlagDADDR {
		return 0, nil
	}
	mask, val, op, n, ok := maskCmp(exprs, i, f.Register, 4)
	if !ok || mask != nil {
		return 0, nil
	}
	typ := binary.LittleEndian.Uint32(val)
	if typ > 11 {
		return 0, nil
	}
	info := make([]byte, 8)
	bit := uint16(1) << typ
	var flags uint32
	if f.FlagSADDR {
		binary.LittleEndian.PutUint16(info[0:], bit)
		if op == expr.CmpOpNeq {
			flags |= 0x1 // XT_ADDRTYPE_INVERT_SOURCE
		}
	} else {
		binary.LittleEndian.PutUint16(info[2:], bit)
		if op == expr.CmpOpNeq {
			flags |= 0x2 // XT_ADDRTYPE_INVERT_DEST
		}
	}
	binary.LittleEndian.PutUint32(info[4:], flags)
	u := xt.Unknown(info)
	return n, &expr.Match{Name: "addrtype", Rev: 1, Info: &u}
}

// ipDSCP: `ip dscp V` loads the TOS byte, masks 0xfc and compares V<<2;
// xt_dscp compares (TOS >> 2) with V.
func ipDSCP(family byte, _ nlrules.Chain, exprs []expr.Any, i int) (int, *expr.Match) {
	p, ok := exprs[i].(*expr.Payload)
	if !ok || family != unix.NFPROTO_IPV4 || p.OperationType != expr.PayloadLoad || p.Base != expr.PayloadBaseNetworkHeader || p.Offset != 1 || p.Len != 1 {
		return 0, nil
	}
	mask, val, op, n, ok := maskCmp(exprs, i, p.DestRegister, 1)
	if !ok || mask == nil || mask[0] != 0xfc || val[0]&0x03 != 0 {
		return 0, nil
	}
	info := make([]byte, 8)
	info[0] = val[0] >> 2
	if op == expr.CmpOpNeq {
		info[1] = 1
	}
	u := xt.Unknown(info)
	return n, &expr.Match{Name: "dscp", Rev: 0, Info: &u}
}
