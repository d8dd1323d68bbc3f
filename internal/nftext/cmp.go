package nftext

import (
	"bytes"
	"fmt"

	"sort"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// prefixLen returns the length of a contiguous network mask, or -1.
func prefixLen(mask []byte) int {
	n, seenZero := 0, false
	for _, b := range mask {
		for i := 7; i >= 0; i-- {
			if b&(1<<uint(i)) != 0 {
				if seenZero {
					return -1
				}
				n++
			} else {
				seenZero = true
			}
		}
	}
	return n
}

func (s *state) cmp(e *expr.Cmp) {
	v := s.get(e.Register)
	if v.depTok >= 0 && v.depTok < len(s.out) {
		s.out[v.depTok].dropped = true
	}
	text := s.match(v, e.Op, e.Data)
	if e.Op == expr.CmpOpLte && v.mask == nil && len(s.out) > 0 && s.out[len(s.out)-1].rangeOf == v {
		last := &s.out[len(s.out)-1]
		last.text = v.f.name + " " + last.low + "-" + format(v.f.kind, e.Data)
		last.rangeOf = nil
		return
	}
	if e.Op == expr.CmpOpGte && v.mask == nil && v.multi == nil && v.full == 0 {
		s.out = append(s.out, token{text: text, rangeOf: v, low: format(v.f.kind, e.Data)})
		return
	}
	if e.Op == expr.CmpOpEq && v.mask == nil {
		switch v.f.name {
		case "meta l4proto", "ip protocol", "ip6 nexthdr":
			if p, ok := l4ProtoHeader[uintOf(e.Data, false)]; ok {
				s.l4, s.l4At = p, len(s.out)
			}
		case "meta iiftype":
			if uintOf(e.Data, false) == 1 {
				s.llAt = len(s.out)
			}
		case "meta nfproto":
			if s.o.Family == unix.NFPROTO_INET {
				s.nfAt = len(s.out)
			}
		case "meta protocol":
			// In an ip or ip6 table the family already implies it; nft hides it.
			et := uintOf(e.Data, true)
			if (s.o.Family == unix.NFPROTO_IPV4 && et == 0x0800) || (s.o.Family == unix.NFPROTO_IPV6 && et == 0x86dd) {
				s.out = append(s.out, token{text: text, dropped: true})
				return
			}
		}
	}
	s.emit(text)
}

// match renders `lhs [op] value`, folding a preceding bitwise mask into the
// forms nft prints: a sub-byte header field, a flag list, a prefix, or
// `lhs & mask == value`.
func (s *state) match(v *regval, op expr.CmpOp, data []byte) string {
	name, k := v.f.name, v.f.kind
	if v.full > 0 {
		padded := make([]byte, v.full)
		copy(padded, data)
		bits := len(data) * 8
		if v.mask != nil {
			bits = prefixLen(v.mask)
		}
		return fmt.Sprintf("%s%s%s/%d", name, opText(op), format(k, padded), bits)
	}
	if v.multi != nil && v.mask == nil && op == expr.CmpOpEq {
		var parts []string
		for _, hf := range v.multi {
			n := int(hf.shift)
			if n > len(data) {
				break
			}
			parts = append(parts, v.proto+" "+hf.name+" "+format(hf.kind, data[:n]))
			data = data[n:]
		}
		return strings.Join(parts, " ")
	}
	if v.mask == nil {
		return name + opText(op) + format(k, data)
	}
	if !allZero(v.xor) {
		return fmt.Sprintf("%s & %s ^ %s%s%s", name, format(kHexBE, v.mask), format(kHexBE, v.xor), eqText(op), format(k, data))
	}
	for _, hf := range v.hfs {
		if hf.mask != nil && bytes.Equal(hf.mask, v.mask) {
			n := hf.name
			if v.proto != "" {
				n = v.proto + " " + n
			}
			val := uintOf(data, true) >> hf.shift
			return n + opText(op) + format(hf.kind, []byte{byte(val)})
		}
	}
	switch k {
	case kCtLabel:
		if allZero(data) && op == expr.CmpOpNeq {
			return name + " " + format(k, v.mask)
		}
	case kCtState, kCtStatus, kTCPFlags:
		if allZero(data) && op == expr.CmpOpNeq {
			return name + " " + format(k, v.mask)
		}
		if allZero(data) && op == expr.CmpOpEq {
			return name + " ! " + format(k, v.mask)
		}
		if op == expr.CmpOpEq {
			return name + " " + format(k, data) + " / " + format(k, v.mask)
		}
	case kIPv4, kIPv6, kEther:
		if n := prefixLen(v.mask); n >= 0 {
			return fmt.Sprintf("%s%s%s/%d", name, opText(op), format(k, data), n)
		}
	}
	return name + " & " + format(k, v.mask) + eqText(op) + format(k, data)
}

func eqText(op expr.CmpOp) string {
	if op == expr.CmpOpEq {
		return " == "
	}
	return opText(op)
}

// concat returns the loads a lookup reads starting at register r: one, or
// several loaded one after another into adjacent registers (`a . b`).
func (s *state) concat(r uint32) []*regval {
	first := s.get(r)
	parts := []*regval{first}
	idx := regIndex(r)
	last := first
	for {
		idx += uint32((last.size + 3) / 4)
		next, ok := s.regs[idx]
		if !ok || next.seq <= last.seq || idx >= 1000 {
			return parts
		}
		parts = append(parts, next)
		last = next
	}
}

func (s *state) lookup(e *expr.Lookup) {
	parts := s.concat(e.SourceRegister)
	var names []string
	for _, p := range parts {
		if p.depTok >= 0 && p.depTok < len(s.out) {
			s.out[p.depTok].dropped = true
		}
		names = append(names, p.f.name)
	}
	lhs := strings.Join(names, " . ")
	set := s.setText(e.SetName, parts)
	switch {
	case e.IsDestRegSet && e.DestRegister == 0:
		s.emit(lhs + " vmap " + set)
	case e.IsDestRegSet:
		s.load(e.DestRegister, &regval{f: field{lhs + " map " + set, kInt}, depTok: -1})
	case e.Invert:
		s.emit(lhs + " != " + set)
	default:
		s.emit(lhs + " " + set)
	}
}

func (s *state) setText(name string, parts []*regval) string {
	if s.o.AnonSet == nil || !strings.HasPrefix(name, "__") {
		return "@" + name
	}
	elems, ok := s.o.AnonSet(name)
	if !ok {
		return "@" + name
	}
	sort.Slice(elems, func(i, j int) bool { return bytes.Compare(elems[i].Key, elems[j].Key) < 0 })
	var items []string
	for _, el := range elems {
		item := formatKey(parts, el.Key)
		if el.KeyEnd != nil && !bytes.Equal(el.KeyEnd, el.Key) {
			item += "-" + formatKey(parts, el.KeyEnd)
		}
		switch {
		case el.Verdict != nil:
			item += " : " + Verdict(el.Verdict)
		case el.Data != nil:
			item += " : " + format(kHexBE, el.Data)
		}
		items = append(items, item)
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

// formatKey splits a (possibly concatenated) key by the parts' sizes.
func formatKey(parts []*regval, key []byte) string {
	if len(parts) == 1 {
		return format(parts[0].f.kind, key)
	}
	var out []string
	for _, p := range parts {
		n := p.size
		if n > len(key) {
			n = len(key)
		}
		out = append(out, format(p.f.kind, key[:n]))
		step := (p.size + 3) / 4 * 4
		if step > len(key) {
			step = len(key)
		}
		key = key[step:]
	}
	return strings.Join(out, " . ")
}
