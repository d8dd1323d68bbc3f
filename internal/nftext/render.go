package nftext

import (
	"fmt"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// SetElement is one element of an anonymous set or map, for inline
// rendering as `{ a, b }` or `{ a : accept }`.
type SetElement struct {
	Key     []byte
	KeyEnd  []byte        // interval sets: the inclusive upper bound, nil otherwise
	Verdict *expr.Verdict // verdict maps
	Data    []byte        // data maps
}

// Options tell the renderer what the expressions alone do not.
type Options struct {
	// Family is the table family (unix.NFPROTO_IPV4, _IPV6, _INET, ...). It
	// decides which implicit dependencies nft hides, as `meta nfproto ipv4`
	// before `ip saddr` in an inet table.
	Family byte
	// AnonSet returns the elements of an anonymous set (named like __set0)
	// so it prints inline; nil, or false, prints `@__set0`.
	AnonSet func(name string) ([]SetElement, bool)
}

// Rule renders a rule's expressions as one line of `nft list` text.
func Rule(exprs []expr.Any, o Options) string {
	s := &state{o: o, regs: map[uint32]*regval{}, l4At: -1, nfAt: -1, llAt: -1}
	for _, e := range exprs {
		s.expr(e)
	}
	var out []string
	for _, t := range s.out {
		if !t.dropped && t.text != "" {
			out = append(out, t.text)
		}
	}
	return strings.Join(out, " ")
}

// regval is what a register holds while a rule is evaluated left to right.
type regval struct {
	f      field
	hfs    []headerField // header fields sharing these bytes, told apart by a later mask
	seq    int           // load order, to join concatenations
	full   int           // a partial load of an address field: the field's length
	multi  []headerField // a load spanning several whole fields, in order
	proto  string        // transport header the load belongs to
	size   int
	imm    []byte // constant loaded by immediate
	mask   []byte // bitwise mask applied since the load
	xor    []byte
	depTok int // index of the dependency token this load makes redundant, -1 none
}

type token struct {
	text    string
	dropped bool
	rangeOf *regval // a `>=` match this token holds, for folding `>= a <= b` into `a-b`
	low     string
	l4      string // the transport header this match fixes ("tcp"), for dependency removal
	nfproto byte   // the family this match fixes, for dependency removal
}

type state struct {
	o    Options
	regs map[uint32]*regval
	out  []token
	l4   string // transport protocol fixed so far
	l4At int    // token fixing it, -1 none
	nfAt int
	llAt int
	seq  int
}

// regIndex maps both register numberings to 32-bit slots.
func regIndex(r uint32) uint32 {
	if r >= 1 && r <= 4 {
		return (r - 1) * 4
	}
	if r >= 8 {
		return r - 8
	}
	return 1000 + r // verdict register
}

func (s *state) load(r uint32, v *regval) {
	s.seq++
	v.seq = s.seq
	if v.size == 0 {
		v.size = 4
		if v.f.kind == kString || v.f.kind == kIPv6 {
			v.size = 16
		}
	}
	s.regs[regIndex(r)] = v
}

func (s *state) get(r uint32) *regval {
	if v, ok := s.regs[regIndex(r)]; ok {
		return v
	}
	return &regval{f: field{fmt.Sprintf("reg%d", r), kInt}}
}

func (s *state) emit(text string) { s.out = append(s.out, token{text: text}) }

func (s *state) expr(e expr.Any) {
	switch e := e.(type) {
	case *expr.Meta:
		s.meta(e)
	case *expr.Payload:
		s.payload(e)
	case *expr.Ct:
		s.ct(e)
	case *expr.Bitwise:
		v := *s.get(e.SourceRegister)
		v.mask, v.xor = e.Mask, e.Xor
		s.load(e.DestRegister, &v)
	case *expr.Byteorder:
		v := *s.get(e.SourceRegister)
		if v.f.kind == kInt && e.Op == expr.ByteorderHton {
			v.f.kind = kIntBE
		}
		s.load(e.DestRegister, &v)
	case *expr.Immediate:
		s.load(e.Register, &regval{imm: e.Data, size: len(e.Data)})
	case *expr.Cmp:
		s.cmp(e)
	case *expr.Range:
		v := s.get(e.Register)
		s.emit(v.f.name + opText(e.Op) + format(v.f.kind, e.FromData) + "-" + format(v.f.kind, e.ToData))
	case *expr.Lookup:
		s.lookup(e)
	case *expr.Fib:
		s.load(e.Register, fibLoad(e))
	case *expr.Rt:
		f, ok := rtFields[e.Key]
		if !ok {
			f = field{fmt.Sprintf("rt key#%d", e.Key), kInt}
		}
		s.load(e.Register, &regval{f: f})
	case *expr.Socket:
		f, ok := socketFields[e.Key]
		if !ok {
			f = field{fmt.Sprintf("socket key#%d", e.Key), kInt}
		}
		if e.Key == expr.SocketKeyCgroupv2 {
			f.name = fmt.Sprintf("socket cgroupv2 level %d", e.Level)
		}
		s.load(e.Register, &regval{f: f})
	case *expr.Numgen:
		mode := map[uint32]string{0: "inc", 1: "random"}[e.Type]
		name := fmt.Sprintf("numgen %s mod %d", mode, e.Modulus)
		if e.Offset != 0 {
			name += fmt.Sprintf(" offset %d", e.Offset)
		}
		s.load(e.Register, &regval{f: field{name, kInt}})
	case *expr.Hash:
		name := "symhash"
		if e.Type == expr.HashTypeJenkins {
			name = "jhash " + s.get(e.SourceRegister).f.name
		}
		name += fmt.Sprintf(" mod %d", e.Modulus)
		if e.Seed != 0 {
			name += fmt.Sprintf(" seed 0x%x", e.Seed)
		}
		if e.Offset != 0 {
			name += fmt.Sprintf(" offset %d", e.Offset)
		}
		s.load(e.DestRegister, &regval{f: field{name, kInt}})
	case *expr.Exthdr:
		s.exthdr(e)
	default:
		s.statement(e)
	}
}

func opText(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpNeq:
		return " != "
	case expr.CmpOpLt:
		return " < "
	case expr.CmpOpLte:
		return " <= "
	case expr.CmpOpGt:
		return " > "
	case expr.CmpOpGte:
		return " >= "
	}
	return " "
}

func (s *state) meta(e *expr.Meta) {
	f := metaField(e.Key)
	if e.SourceRegister {
		s.emit(f.name + " set " + s.value(s.get(e.Register), f.kind))
		return
	}
	s.load(e.Register, &regval{f: f, depTok: -1})
}

func (s *state) ct(e *expr.Ct) {
	hasDir := e.Direction != 0 || e.Key == expr.CtKeySRC || e.Key == expr.CtKeyDST ||
		e.Key == expr.CtKeyPROTOSRC || e.Key == expr.CtKeyPROTODST || e.Key == unix.NFT_CT_SRC_IP ||
		e.Key == unix.NFT_CT_DST_IP || e.Key == unix.NFT_CT_SRC_IP6 || e.Key == unix.NFT_CT_DST_IP6
	f := ctName(e, hasDir)
	if (e.Key == expr.CtKeySRC || e.Key == expr.CtKeyDST) && s.o.Family == unix.NFPROTO_IPV6 {
		f.kind = kIPv6
	}
	if e.Key == expr.CtKeySRC || e.Key == expr.CtKeyDST {
		fam := "ip"
		if f.kind == kIPv6 {
			fam = "ip6"
		}
		f.name = strings.Replace(f.name, "saddr", fam+" saddr", 1)
		f.name = strings.Replace(f.name, "daddr", fam+" daddr", 1)
	}
	if e.SourceRegister {
		s.emit(f.name + " set " + s.value(s.get(e.Register), f.kind))
		return
	}
	s.load(e.Register, &regval{f: f, depTok: -1})
}

// value renders what a register holds as the right side of a `set`.
func (s *state) value(v *regval, k kind) string {
	if v.imm != nil {
		return format(k, v.imm)
	}
	return v.f.name
}

func fibLoad(e *expr.Fib) *regval {
	var in []string
	for _, f := range []struct {
		on   bool
		name string
	}{{e.FlagSADDR, "saddr"}, {e.FlagDADDR, "daddr"}, {e.FlagMARK, "mark"}, {e.FlagIIF, "iif"}, {e.FlagOIF, "oif"}} {
		if f.on {
			in = append(in, f.name)
		}
	}
	name := "fib " + strings.Join(in, " . ")
	switch {
	case e.ResultADDRTYPE:
		return &regval{f: field{name + " type", kFibType}}
	case e.ResultOIFNAME:
		return &regval{f: field{name + " oifname", kString}}
	case e.FlagPRESENT:
		return &regval{f: field{name + " oif", kBool}}
	default:
		return &regval{f: field{name + " oif", kFibOIF}}
	}
}

func (s *state) payload(e *expr.Payload) {
	if e.OperationType == expr.PayloadWrite {
		if t, ok := s.fieldWrite(e); ok {
			s.emit(t)
			return
		}
		v := s.payloadField(e)
		s.emit(v.f.name + " set " + s.value(s.get(e.SourceRegister), v.f.kind))
		return
	}
	s.load(e.DestRegister, s.payloadField(e))
}

func (s *state) payloadField(e *expr.Payload) *regval {
	key := payloadKey{e.Base, e.Offset, e.Len}
	var table map[payloadKey][]headerField
	proto := ""
	switch e.Base {
	case expr.PayloadBaseLLHeader:
		table = linkFields
	case expr.PayloadBaseNetworkHeader:
		table = ipv4Fields
		if s.o.Family == unix.NFPROTO_IPV6 {
			table = ipv6Fields
		}
	case expr.PayloadBaseTransportHeader:
		proto = s.l4
		if proto == "" {
			proto = "th"
		}
		table = transportFields[proto]
	}
	dep := -1
	if e.Base == expr.PayloadBaseTransportHeader && s.l4 != "" {
		dep = s.l4At
	}
	if e.Base == expr.PayloadBaseNetworkHeader && s.nfAt >= 0 {
		dep = s.nfAt
	}
	if e.Base == expr.PayloadBaseLLHeader && s.llAt >= 0 {
		dep = s.llAt
	}
	if hfs, ok := table[key]; ok {
		hf := hfs[0]
		f := hf.field
		if proto != "" {
			f.name = proto + " " + f.name
		}
		return &regval{f: f, hfs: hfs, proto: proto, size: int(e.Len), depTok: dep}
	}
	for k, hfs := range table {
		f := hfs[0].field
		if k.offset == e.Offset && e.Len < k.length && (f.kind == kIPv4 || f.kind == kIPv6 || f.kind == kEther) {
			return &regval{f: f, full: int(k.length), size: int(e.Len), depTok: dep}
		}
	}
	if multi := cover(table, e.Offset, e.Len); multi != nil {
		f := field{name: proto, kind: kHexBE}
		return &regval{f: f, multi: multi, proto: proto, size: int(e.Len), depTok: dep}
	}
	base := map[expr.PayloadBase]string{expr.PayloadBaseLLHeader: "ll", expr.PayloadBaseNetworkHeader: "nh", expr.PayloadBaseTransportHeader: "th"}[e.Base]
	return &regval{f: field{fmt.Sprintf("@%s,%d,%d", base, e.Offset*8, e.Len*8), kHexBE}, size: int(e.Len), depTok: -1}
}

func (s *state) exthdr(e *expr.Exthdr) {
	name := fmt.Sprintf("exthdr type %d offset %d", e.Type, e.Offset)
	switch e.Op {
	case 3: // NFT_EXTHDR_OP_SCTP
		name = "sctp chunk " + named(sctpChunks, uint64(e.Type))
	case expr.ExthdrOpTcpopt:
		opt := map[uint8]string{0: "eol", 1: "nop", 2: "maxseg", 3: "window", 4: "sack-perm", 5: "sack", 8: "timestamp"}[e.Type]
		if opt == "" {
			opt = fmt.Sprintf("@%d,%d,%d", e.Type, e.Offset*8, e.Len*8)
		}
		name = "tcp option " + opt
		if e.Flags == 0 && opt == "maxseg" && e.Offset == 2 {
			name += " size"
		}
	case expr.ExthdrOpIpv6:
		name = fmt.Sprintf("exthdr %d", e.Type)
	default:
		if e.Op == 2 { // NFT_EXTHDR_OP_IPV4
			name = "ip option " + map[uint8]string{7: "rr", 68: "ts", 131: "lsrr", 137: "ssrr", 148: "ra"}[e.Type]
		}
	}
	if e.Flags&unix.NFT_EXTHDR_F_PRESENT != 0 {
		s.load(e.DestRegister, &regval{f: field{name, kBool}})
		return
	}
	s.load(e.DestRegister, &regval{f: field{name, kIntBE}})
}

// cover finds whole fields that exactly tile [offset, offset+length), as
// nft loads `icmp type X icmp code Y` in one go.
func cover(table map[payloadKey][]headerField, offset, length uint32) []headerField {
	var out []headerField
	for at := offset; at < offset+length; {
		found := false
		for k, hfs := range table {
			if k.offset == at && hfs[0].mask == nil && at+k.length <= offset+length {
				hf := hfs[0]
				hf.shift = uint(k.length) // reuse: the field's byte length
				out = append(out, hf)
				at += k.length
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

var sctpChunks = map[uint64]string{0: "data", 1: "init", 2: "init-ack", 3: "sack", 4: "heartbeat", 5: "heartbeat-ack", 6: "abort", 7: "shutdown", 8: "shutdown-ack", 9: "error", 10: "cookie-echo", 11: "cookie-ack", 12: "ecne", 13: "cwr", 14: "shutdown-complete"}

// fieldWrite renders `field set value` for nft's read-modify-write of a
// header field: load the bytes around it, keep the other bits with a mask,
// put the new value in with xor, write back.
func (s *state) fieldWrite(e *expr.Payload) (string, bool) {
	src := s.get(e.SourceRegister)
	if src.mask == nil || len(src.mask) != int(e.Len) || len(src.xor) != int(e.Len) {
		return "", false
	}
	table := ipv4Fields
	if s.o.Family == unix.NFPROTO_IPV6 {
		table = ipv6Fields
	}
	if e.Base != expr.PayloadBaseNetworkHeader {
		return "", false
	}
	for i := 0; i < int(e.Len); i++ {
		changed := ^src.mask[i]
		if changed == 0 {
			continue
		}
		for k, hfs := range table {
			if k.offset != e.Offset+uint32(i) || int(k.length)+i > int(e.Len) {
				continue
			}
			for _, hf := range hfs {
				switch {
				case hf.mask != nil && k.length == 1 && hf.mask[0] == changed:
					return hf.name + " set " + format(hf.kind, []byte{src.xor[i] >> hf.shift}), true
				case hf.mask == nil && allZero(src.mask[i:i+int(k.length)]):
					return hf.name + " set " + format(hf.kind, src.xor[i:i+int(k.length)]), true
				}
			}
		}
	}
	return "", false
}
