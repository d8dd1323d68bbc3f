package iptmodel

import (
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// regType is what iptables believes a register holds.
type regType int

const (
	regUndef regType = iota
	regMeta
	regPayload
	regImmediate
)

type reg struct {
	typ     regType
	metaKey expr.MetaKey
	base    expr.PayloadBase
	offset  uint32
	length  uint32
	bitwise bool
	mask    []byte
	imm     []byte
	writer  int // index of the expression iptables believes wrote it
}

// slot maps nf_tables register numbers to iptables' register array: the
// 16-byte registers overlap the 32-bit ones.
func slot(r uint32) int {
	switch {
	case r == 0:
		return 0
	case r >= 1 && r <= 4:
		return 1 + int(r-1)*4
	case r >= 8 && r <= 23:
		return int(r-8) + 1
	}
	return -1
}

// slot is the register slot iptables files register r under. Before
// 1.8.9 the decoder kept one load context whatever the register (verified
// in 1.8.7: `jhash ip saddr mod 2 0`, which loads into register 2 and
// compares register 1, reads as `-s 0.0.0.0/32`).
func (d *decoder) slot(r uint32) int {
	if !d.v.fatalErrors() && r != 0 && slot(r) >= 0 {
		return 1
	}
	return slot(r)
}

// DecodeError is one message the decoder prints ("Error: <Msg>").
type DecodeError struct {
	Index int    `json:"index"` // expression at fault
	Msg   string `json:"msg"`
}

// decoded is what a version's decoder made of one rule.
type decoded struct {
	errs    []DecodeError
	ignored []int // expressions skipped or misapplied: the rule is misread
	cmd     command
}

// decoder walks a rule's expressions as iptables-nft does.
type decoder struct {
	v       Version
	family  byte
	exprs   []expr.Any
	regs    [17]reg
	actual  map[int]int // register slot -> index of the expression that really wrote it last
	out     decoded
	cleared bool // 1.8.7/1.8.8: a cmp consumes the load context
	// targetFrom is the statement (not a verdict) that set the target, -1.
	targetFrom int
}

func decode(v Version, family byte, exprs []expr.Any) decoded {
	d := &decoder{v: v, family: family, exprs: exprs, actual: map[int]int{}, cleared: !v.fatalErrors(), targetFrom: -1}
	d.out.cmd.family = family
	d.out.cmd.icmpAnyNumeric = v == V1811 // verified: 1.8.9 prints "any", 1.8.11 "255/0"
	for i := range d.regs {
		d.regs[i].writer = -1
	}
	for i, e := range exprs {
		d.step(i, e)
	}
	return d.out
}

func (d *decoder) fail(i int, msg string) {
	if d.v.fatalErrors() {
		d.out.errs = append(d.out.errs, DecodeError{Index: i, Msg: msg})
		return
	}
	d.ignore(i)
}

func (d *decoder) ignore(i int) { d.out.ignored = append(d.out.ignored, i) }

func (d *decoder) sreg(r uint32) *reg {
	s := d.slot(r)
	if s < 0 {
		return nil
	}
	return &d.regs[s]
}

// dreg returns a register for a load iptables understands, cleared.
func (d *decoder) dreg(i int, r uint32) *reg {
	s := d.slot(r)
	if s < 0 {
		return nil
	}
	d.regs[s] = reg{writer: i}
	d.actual[s] = i
	return &d.regs[s]
}

// wrote records a load iptables skips: the register keeps what iptables
// thinks, but the value in the kernel came from expression i.
func (d *decoder) wrote(i int, r uint32) {
	if s := d.slot(r); s >= 0 {
		d.actual[s] = i
	}
}

// stale reports whether iptables would read a register another expression
// overwrote behind its back.
func (d *decoder) stale(r uint32) bool {
	s := d.slot(r)
	if s < 0 {
		return false
	}
	w, ok := d.actual[s]
	return ok && w != d.regs[s].writer
}

func (d *decoder) step(i int, e expr.Any) {
	switch e := e.(type) {
	case *expr.Counter:
	case *expr.Payload:
		if e.OperationType == expr.PayloadWrite {
			// iptables reads any payload expression as a load into its
			// (absent) destination register, the verdict register.
			r := d.dreg(i, 0)
			*r = reg{typ: regPayload, base: e.Base, offset: e.Offset, length: e.Len, writer: i}
			d.ignore(i)
			return
		}
		if r := d.dreg(i, e.DestRegister); r != nil {
			*r = reg{typ: regPayload, base: e.Base, offset: e.Offset, length: e.Len, writer: i}
		}
	case *expr.Meta:
		if e.SourceRegister {
			d.metaSet(i, e)
			return
		}
		if r := d.dreg(i, e.Register); r != nil {
			*r = reg{typ: regMeta, metaKey: e.Key, writer: i}
		}
	case *expr.Bitwise:
		d.bitwise(i, e)
	case *expr.Cmp:
		d.cmp(i, e)
	case *expr.Immediate:
		if r := d.dreg(i, e.Register); r != nil {
			*r = reg{typ: regImmediate, imm: e.Data, writer: i}
		}
	case *expr.Verdict:
		d.verdict(i, e)
	case *expr.Match:
		d.out.cmd.matches = append(d.out.cmd.matches, xtMatch{name: e.Name, info: e.Info})
	case *expr.Target:
		d.out.cmd.target = xtTarget(e)
	case *expr.Limit:
		d.out.cmd.matches = append(d.out.cmd.matches, xtMatch{name: "limit", limit: e})
		if e.Type != expr.LimitTypePkts || e.Over {
			d.ignore(i) // read as a packet limit without "over"
		}
	case *expr.Log:
		d.out.cmd.target = "NFLOG"
		if e.Key&(1<<unix.NFTA_LOG_GROUP) == 0 {
			d.ignore(i) // a syslog log read as NFLOG
			if !d.v.logWithGroupListed() {
				// Verified in 1.8.7: neither -j NFLOG nor any of its
				// options matches what it builds from a syslog log.
				d.out.cmd.unstatableWhy = "an NFLOG target that no -j NFLOG option reproduces"
			}
		}
	case *expr.Range:
		d.rng(i, e)
	case *expr.Lookup:
		// Only ebtables' among decodes lookups; ip and ip6 skip them.
		d.ignore(i)
		if e.IsDestRegSet {
			d.wrote(i, e.DestRegister)
		}
	default:
		d.ignore(i)
		for _, r := range writes(e) {
			d.wrote(i, r)
		}
	}
}

// writes lists the registers an expression iptables skips loads into.
func writes(e expr.Any) []uint32 {
	switch e := e.(type) {
	case *expr.Ct:
		if !e.SourceRegister {
			return []uint32{e.Register}
		}
	case *expr.Fib:
		return []uint32{e.Register}
	case *expr.Rt:
		return []uint32{e.Register}
	case *expr.Socket:
		return []uint32{e.Register}
	case *expr.Numgen:
		return []uint32{e.Register}
	case *expr.Hash:
		return []uint32{e.DestRegister}
	case *expr.Exthdr:
		if e.DestRegister != 0 {
			return []uint32{e.DestRegister}
		}
	case *expr.Byteorder:
		return []uint32{e.DestRegister}
	}
	return nil
}

func (d *decoder) metaSet(i int, e *expr.Meta) {
	r := d.sreg(e.Register)
	if r == nil {
		return
	}
	if e.Key == expr.MetaKeyMARK && d.v.metaMarkSet() {
		if r.typ != regImmediate {
			d.fail(i, "meta sreg is not an immediate")
			return
		}
		d.setTarget(i, fmt.Sprintf("MARK --set-xmark 0x%x/0xffffffff", le32(r.imm)))
		return
	}
	if e.Key != expr.MetaKeyNFTRACE {
		d.fail(i, "meta sreg key not supported")
		return
	}
	if r.typ != regImmediate {
		d.fail(i, "meta nftrace but reg not immediate")
		return
	}
	if len(r.imm) == 0 || r.imm[0] == 0 {
		d.fail(i, "trace is cleared")
		return
	}
	d.setTarget(i, "TRACE")
}

// setTarget records the rule's target. iptables keeps one: a later one
// (a verdict after `meta mark set`) replaces it, and the statement that
// set the first is lost from iptables' view.
func (d *decoder) setTarget(i int, target string) {
	if d.targetFrom >= 0 {
		d.ignore(d.targetFrom)
	}
	d.out.cmd.target, d.targetFrom = target, i
}

func (d *decoder) bitwise(i int, e *expr.Bitwise) {
	src := d.sreg(e.SourceRegister)
	if src == nil {
		return
	}
	dst := src
	if e.SourceRegister != e.DestRegister {
		if dst = d.sreg(e.DestRegister); dst == nil {
			return
		}
		*dst = *src
	}
	if d.stale(e.SourceRegister) {
		d.wrote(i, e.DestRegister)
	} else if s := d.slot(e.DestRegister); s >= 0 {
		d.actual[s] = dst.writer
	}
	if len(e.Xor) > 16 {
		d.fail(i, "bitwise xor too large")
		return
	}
	if len(e.Mask) > 16 {
		d.fail(i, "bitwise mask too large")
		return
	}
	dst.bitwise = true
	dst.mask = e.Mask
}

func (d *decoder) verdict(i int, e *expr.Verdict) {
	if d.targetFrom >= 0 && e.Kind != expr.VerdictKind(unix.NFT_CONTINUE) {
		d.ignore(d.targetFrom)
		d.targetFrom = -1
	}
	switch e.Kind {
	case expr.VerdictAccept:
		d.out.cmd.target = "ACCEPT"
	case expr.VerdictDrop:
		d.out.cmd.target = "DROP"
	case expr.VerdictReturn:
		d.out.cmd.target = "RETURN"
	case expr.VerdictJump:
		d.out.cmd.target = e.Chain
	case expr.VerdictGoto:
		d.out.cmd.target = e.Chain
		d.out.cmd.gotoFlag = true
	default:
		d.ignore(i) // continue, break, queue: no iptables target
	}
}
