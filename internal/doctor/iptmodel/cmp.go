package iptmodel

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func (d *decoder) cmp(i int, e *expr.Cmp) {
	r := d.sreg(e.Register)
	if r == nil {
		return
	}
	if d.stale(e.Register) {
		d.ignore(i) // compares a value iptables thinks another expression loaded
	}
	switch r.typ {
	case regUndef:
		d.fail(i, "cmp sreg undef")
	case regMeta:
		d.cmpMeta(i, r, e)
	case regPayload:
		switch r.base {
		case expr.PayloadBaseLLHeader:
			d.ignore(i) // only ebtables reads link-layer payloads
			if d.v.linkLayerAsNetwork() {
				d.cmpNetwork(i, r, e) // ... but old releases read them as IP header offsets
			}
		case expr.PayloadBaseNetworkHeader:
			d.cmpNetwork(i, r, e)
		case expr.PayloadBaseTransportHeader:
			d.cmpTransport(i, r, e.Op, e.Data)
		}
	default:
		d.fail(i, "cmp sreg has unknown type")
	}
	if d.cleared {
		// 1.8.7/1.8.8 track one load context that a cmp consumes.
		if s := d.slot(e.Register); s >= 0 {
			d.regs[s] = reg{writer: -1}
			delete(d.actual, s)
		}
	}
}

func (d *decoder) metaKeyError() string {
	if d.family == unix.NFPROTO_IPV6 {
		return "unknown ipv6 meta key"
	}
	return "unknown ipv4 meta key"
}

func (d *decoder) cmpMeta(i int, r *reg, e *expr.Cmp) {
	c := &d.out.cmd
	neq := e.Op == expr.CmpOpNeq
	switch r.metaKey {
	case expr.MetaKeyL4PROTO:
		if len(e.Data) > 0 {
			c.proto = e.Data[0]
			c.protoInv = neq
		}
	case expr.MetaKeyIIFNAME, expr.MetaKeyIIF, expr.MetaKeyBRIIIFNAME:
		c.in, c.inInv = ifname(r.metaKey, e.Data), neq
	case expr.MetaKeyOIFNAME, expr.MetaKeyOIF, expr.MetaKeyBRIOIFNAME:
		c.out, c.outInv = ifname(r.metaKey, e.Data), neq
	case expr.MetaKeyMARK, expr.MetaKeyPKTTYPE:
		if !d.v.decodesMetaMatches() {
			d.ignore(i) // verified: 1.8.7 skips both
			return
		}
		d.cmpMetaMatch(r, e)
	default:
		d.fail(i, d.metaKeyError())
	}
}

func (d *decoder) cmpMetaMatch(r *reg, e *expr.Cmp) {
	c := &d.out.cmd
	neq := e.Op == expr.CmpOpNeq
	switch r.metaKey {
	case expr.MetaKeyMARK:
		c.matches = append(c.matches, xtMatch{name: "mark", mark: le32(e.Data), mask: maskOr(r), inv: neq})
	case expr.MetaKeyPKTTYPE:
		c.matches = append(c.matches, xtMatch{name: "pkttype", pkttype: first(e.Data), inv: neq})
	}
}

func (d *decoder) cmpNetwork(i int, r *reg, e *expr.Cmp) {
	c := &d.out.cmd
	neq := e.Op == expr.CmpOpNeq
	if d.family == unix.NFPROTO_IPV6 {
		switch r.offset {
		case 8:
			c.src, c.srcMask, c.srcInv = e.Data, r.mask, neq
		case 24:
			c.dst, c.dstMask, c.dstInv = e.Data, r.mask, neq
		case 6:
			c.proto, c.protoInv = first(e.Data), neq
			if d.v.decodesTTL() {
				// Verified in 1.8.9 and 1.8.11: the next-header case falls
				// through into the hop limit one, so `ip6 nexthdr tcp`
				// reads as `-p tcp -m hl --hl-eq 6`.
				c.matches = append(c.matches, xtMatch{name: "hl", ttlOp: e.Op, ttl: first(e.Data)})
				d.ignore(i)
			}
		case 7:
			if !d.v.decodesTTL() {
				d.ignore(i)
				return
			}
			c.matches = append(c.matches, xtMatch{name: "hl", ttlOp: e.Op, ttl: first(e.Data)})
		default:
			d.fail(i, "unknown payload offset")
		}
		return
	}
	switch r.offset {
	case 12:
		c.src, c.srcMask, c.srcInv = e.Data, r.mask, neq
	case 16:
		c.dst, c.dstMask, c.dstInv = e.Data, r.mask, neq
	case 9:
		c.proto, c.protoInv = first(e.Data), neq
	case 6:
		c.frag, c.fragInv = true, r.bitwise && e.Op == expr.CmpOpEq
	case 8:
		if !d.v.decodesTTL() {
			d.ignore(i)
			return
		}
		if !ttlOK(e.Op, first(e.Data)) {
			d.fail(i, "invalid ttl field match")
			return
		}
		c.matches = append(c.matches, xtMatch{name: "ttl", ttlOp: e.Op, ttl: first(e.Data)})
	default:
		d.fail(i, "unknown payload offset")
	}
}

// ttlOK mirrors nft_parse_hl: <= 255 and >= 0 have no iptables form.
func ttlOK(op expr.CmpOp, v byte) bool {
	switch op {
	case expr.CmpOpLte:
		return v != 255
	case expr.CmpOpGte:
		return v != 0
	}
	return true
}

func (d *decoder) cmpTransport(i int, r *reg, op expr.CmpOp, data []byte) {
	c := &d.out.cmd
	if !d.v.decodesTransport() {
		d.ignore(i)
		return
	}
	switch c.proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP:
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		d.icmp(i, r, data)
		return
	default:
		d.fail(i, "unsupported layer 4 protocol value")
		return
	}
	port := func() uint16 { return be16(data) }
	switch {
	case r.offset == 0 && len(data) == 2:
		c.addPort(true, op, port(), port())
	case r.offset == 0 && len(data) == 4:
		c.addPort(true, op, be16(data), be16(data))
		c.addPort(false, op, be16(data[2:]), be16(data[2:]))
	case r.offset == 2 && len(data) == 2:
		c.addPort(false, op, port(), port())
	case r.offset == 13 && len(data) == 1 && c.proto == unix.IPPROTO_TCP:
		mask := byte(0xff)
		if r.bitwise && len(r.mask) > 0 {
			mask = r.mask[0]
		}
		c.tcpFlags, c.tcpMask, c.tcpFlagsInv, c.hasTCPFlags = data[0], mask, op == expr.CmpOpNeq, true
	default:
		d.ignore(i) // other transport fields: skipped without a word
	}
}

func (d *decoder) icmp(i int, r *reg, data []byte) {
	if len(data) < 1 {
		d.fail(i, "unexpected RHS data length")
		return
	}
	c := &d.out.cmd
	switch r.offset {
	case 0:
		c.icmpType, c.hasICMP = int(data[0]), true
		switch {
		case len(data) == 2: // nft compares type and code at once
			c.icmpCode, c.hasICMPCode = int(data[1]), true
		case len(data) > 2:
			d.fail(i, "unexpected RHS data length")
		}
	case 1:
		if len(data) > 1 {
			d.fail(i, "unexpected RHS data length")
			return
		}
		if d.family == unix.NFPROTO_IPV6 && !c.hasICMP {
			d.fail(i, "icmp6 code with any type match not supported")
			return
		}
		c.icmpCode, c.hasICMPCode = int(data[0]), true
		if !c.hasICMP {
			c.icmpType, c.hasICMP = 255, true
		}
	default:
		d.fail(i, "unexpected payload offset")
	}
}

func (d *decoder) rng(i int, e *expr.Range) {
	r := d.sreg(e.Register)
	if r == nil {
		return
	}
	switch r.typ {
	case regUndef:
		d.fail(i, "range sreg undef")
	case regPayload:
		if r.base != expr.PayloadBaseTransportHeader {
			d.fail(i, "range with unknown payload base")
			return
		}
		if len(e.FromData) != 2 || len(e.ToData) != 2 {
			d.ignore(i)
			return
		}
		c := &d.out.cmd
		if c.proto != unix.IPPROTO_TCP && c.proto != unix.IPPROTO_UDP {
			d.ignore(i)
			return
		}
		switch r.offset {
		case 0:
			c.addPort(true, e.Op, be16(e.FromData), be16(e.ToData))
		case 2:
			c.addPort(false, e.Op, be16(e.FromData), be16(e.ToData))
		default:
			d.ignore(i)
		}
	default:
		d.fail(i, "range sreg type unsupported")
	}
}

func first(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func be16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func le32(b []byte) uint32 {
	var buf [4]byte
	copy(buf[:], b)
	return binary.LittleEndian.Uint32(buf[:])
}

func maskOr(r *reg) uint32 {
	if r.bitwise && len(r.mask) >= 4 {
		return le32(r.mask)
	}
	return 0xffffffff
}

func ifname(key expr.MetaKey, data []byte) string {
	if key == expr.MetaKeyIIF || key == expr.MetaKeyOIF {
		// iptables names the index in its own namespace; loopback is 1
		// in every namespace, other indexes depend on the node.
		if i := le32(data); i == 1 {
			return "lo"
		} else {
			return "if#" + itoa(int(i))
		}
	}
	n := len(data)
	for n > 0 && data[n-1] == 0 {
		n--
	}
	name := string(data[:n])
	if len(data) > 0 && data[len(data)-1] != 0 {
		name += "+"
	}
	return name
}
