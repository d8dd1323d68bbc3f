package addrset

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Spans are the inside of this package: every union, difference and merge
// is done on address ranges keyed by plain integers, and Set and Builder
// convert to and from netip at their edges. netip.Addr ranges carry a
// pointer (the zone handle) and compare through a method, which made
// sorting, merging and the garbage collector most of a policy compile; spans
// hold no pointers and compare as two uint64s. The policy compiler works on
// Spans directly and converts only the sets that end up in a profile, once
// each.

// Key is an address as a 128-bit integer; IPv4 addresses are held in their
// IPv4-mapped form, and the two families are kept in separate lists.
type Key struct{ hi, lo uint64 }

func KeyOf(a netip.Addr) Key {
	b := a.As16()
	return Key{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (k Key) Addr(v4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	a := netip.AddrFrom16(b)
	if v4 {
		return a.Unmap()
	}
	return a
}

func (k Key) Compare(o Key) int {
	return cmp.Or(cmp.Compare(k.hi, o.hi), cmp.Compare(k.lo, o.lo))
}

// next returns k+1 and false when k is the highest value.
func (k Key) Next() (Key, bool) {
	if k.lo != ^uint64(0) {
		return Key{k.hi, k.lo + 1}, true
	}
	if k.hi != ^uint64(0) {
		return Key{k.hi + 1, 0}, true
	}
	return k, false
}

// prev returns k-1; callers never ask for the predecessor of zero.
func (k Key) Prev() Key {
	if k.lo != 0 {
		return Key{k.hi, k.lo - 1}
	}
	return Key{k.hi - 1, ^uint64(0)}
}

func spanOf(r Range) span { return span{KeyOf(r.From), KeyOf(r.To)} }

// touches reports whether b, which starts at or after a, overlaps a or
// begins right after it.
func touches(a, b span) bool {
	if b.from.Compare(a.to) <= 0 {
		return true
	}
	next, ok := a.to.Next()
	return ok && next == b.from
}

// span is an inclusive range of one family.
type span struct{ from, to Key }

// Spans is a set of addresses: per family, sorted, disjoint, non-adjacent
// Spans, like Set.
type Spans struct{ v4, v6 []span }

func (s Spans) IsEmpty() bool { return len(s.v4) == 0 && len(s.v6) == 0 }

func (s Spans) Equal(t Spans) bool { return slices.Equal(s.v4, t.v4) && slices.Equal(s.v6, t.v6) }

// PointBuilder collects single addresses in any order. IPv4 addresses are
// kept as uint32 so sorting them is a plain integer sort, several times
// faster than sorting ranges through a comparison function.
type PointBuilder struct {
	v4 []uint32
	v6 []Key
}

// grow makes room for about n addresses of each family.
func (b *PointBuilder) Grow(n int) {
	b.v4 = slices.Grow(b.v4, n/2)
	b.v6 = slices.Grow(b.v6, n/2)
}

func (b *PointBuilder) AddAddr(a netip.Addr) { b.AddKey(KeyOf(a), a.Is4()) }

func (b *PointBuilder) AddKey(k Key, v4 bool) {
	if v4 {
		b.v4 = append(b.v4, uint32(k.lo))
	} else {
		b.v6 = append(b.v6, k)
	}
}

// build sorts the points and joins runs of consecutive addresses into Spans.
func (b *PointBuilder) Build() Spans {
	out := Spans{make([]span, 0, len(b.v4)), make([]span, 0, len(b.v6))}
	if len(b.v4) > 0 {
		slices.Sort(b.v4)
		const mapped = 0xffff << 32 // the IPv4-mapped prefix of IPv4 keys
		for i, a := range b.v4 {
			if i > 0 && a == b.v4[i-1] {
				continue
			}
			k := Key{0, mapped | uint64(a)}
			if n := len(out.v4); n > 0 {
				if next, _ := out.v4[n-1].to.Next(); next == k {
					out.v4[n-1].to = k
					continue
				}
			}
			out.v4 = append(out.v4, span{k, k})
		}
	}
	if len(b.v6) > 0 {
		slices.SortFunc(b.v6, Key.Compare)
		for i, k := range b.v6 {
			if i > 0 && k == b.v6[i-1] {
				continue
			}
			if n := len(out.v6); n > 0 {
				if next, ok := out.v6[n-1].to.Next(); ok && next == k {
					out.v6[n-1].to = k
					continue
				}
			}
			out.v6 = append(out.v6, span{k, k})
		}
	}
	return Spans{clipOrNil(out.v4), clipOrNil(out.v6)}
}

// clipOrNil drops spare capacity, and the empty list altogether, so equal
// sets compare equal however they were built.
func clipOrNil(list []span) []span {
	if len(list) == 0 {
		return nil
	}
	return slices.Clip(list)
}

func SpansOf(s Set) Spans {
	conv := func(rs []Range) []span {
		out := make([]span, len(rs))
		for i, r := range rs {
			out[i] = span{KeyOf(r.From), KeyOf(r.To)}
		}
		return out
	}
	return Spans{conv(s.V4()), conv(s.V6())}
}

// toSet converts to the plan's form. Spans are canonical already, so the
// ranges are handed over without the Builder's sort and merge.
func (s Spans) Set() Set {
	v4, v6 := ranges(s.v4, true), ranges(s.v6, false)
	if set, err := FromCanonical(v4, v6); err == nil {
		return set
	}
	// Not canonical would be a bug in the set algebra; sorting and merging
	// again still gives the right set rather than a wrong one.
	return Set{v4: ranges(canonical(slices.Clone(s.v4)), true), v6: ranges(canonical(slices.Clone(s.v6)), false)}
}

func ranges(list []span, v4 bool) []Range {
	if len(list) == 0 {
		return nil
	}
	out := make([]Range, len(list))
	for i, sp := range list {
		out[i] = Range{From: sp.from.Addr(v4), To: sp.to.Addr(v4)}
	}
	return out
}

// canonical sorts and merges spans of one family in place.
func canonical(list []span) []span {
	slices.SortFunc(list, func(a, b span) int { return a.from.Compare(b.from) })
	return clipOrNil(mergeTwo(list, nil))
}

// contains reports whether the address with key k of the given family is in
// s.
func (s Spans) Contains(k Key, v4 bool) bool {
	list := s.v6
	if v4 {
		list = s.v4
	}
	i, _ := slices.BinarySearchFunc(list, k, func(sp span, k Key) int { return sp.to.Compare(k) })
	return i < len(list) && list[i].from.Compare(k) <= 0
}

// UnionSpans merges canonical sets pairwise, which keeps the work linear in
// their total size times the log of their number.
func UnionSpans(sets []Spans) Spans {
	v4 := make([][]span, 0, len(sets))
	v6 := make([][]span, 0, len(sets))
	for _, s := range sets {
		if len(s.v4) > 0 {
			v4 = append(v4, s.v4)
		}
		if len(s.v6) > 0 {
			v6 = append(v6, s.v6)
		}
	}
	return Spans{mergeLists(v4), mergeLists(v6)}
}

func mergeLists(lists [][]span) []span {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	for len(lists) > 1 {
		next := lists[:0:0]
		for i := 0; i < len(lists); i += 2 {
			if i+1 == len(lists) {
				next = append(next, lists[i])
				continue
			}
			next = append(next, mergeTwo(lists[i], lists[i+1]))
		}
		lists = next
	}
	return lists[0]
}

// mergeTwo merges two canonical lists into a new canonical list.
func mergeTwo(a, b []span) []span {
	out := make([]span, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var sp span
		if j == len(b) || (i < len(a) && a[i].from.Compare(b[j].from) <= 0) {
			sp, i = a[i], i+1
		} else {
			sp, j = b[j], j+1
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if touches(*last, sp) {
				if sp.to.Compare(last.to) > 0 {
					last.to = sp.to
				}
				continue
			}
		}
		out = append(out, sp)
	}
	return slices.Clip(out)
}

// SubtractSpans returns the addresses of s not in t.
func SubtractSpans(s, t Spans) Spans {
	return Spans{subtractList(s.v4, t.v4), subtractList(s.v6, t.v6)}
}

func subtractList(a, b []span) []span {
	if len(a) == 0 || len(b) == 0 {
		return a
	}
	// Each cut adds at most one span; sizing for that avoids regrowing.
	out := make([]span, 0, len(a)+len(b))
	j := 0
	for _, cur := range a {
		for j < len(b) && b[j].to.Compare(cur.from) < 0 {
			j++
		}
		alive := true
		for k := j; k < len(b) && b[k].from.Compare(cur.to) <= 0; k++ {
			cut := b[k]
			if cut.from.Compare(cur.from) > 0 {
				out = append(out, span{cur.from, cut.from.Prev()})
			}
			if cut.to.Compare(cur.to) >= 0 {
				alive = false
				break
			}
			cur.from, _ = cut.to.Next()
		}
		if alive {
			out = append(out, cur)
		}
	}
	return slices.Clip(out)
}

// Clip drops spare capacity, and empty lists altogether, so equal sets
// compare equal however they were built.
func (s Spans) Clip() Spans { return Spans{clipOrNil(s.v4), clipOrNil(s.v6)} }
