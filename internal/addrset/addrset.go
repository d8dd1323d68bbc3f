// Package addrset holds sets of IP addresses in one canonical form: for each
// family, a sorted list of disjoint, non-adjacent, inclusive ranges.
//
// Canonical form matters because the dataplane compares the sets it wants with
// the sets it reads back from the kernel, and because nftables interval sets
// reject overlapping elements: whatever the policy says (a pod IP inside an
// ipBlock, an except that splits a CIDR), the set handed to the kernel must
// already be merged.
package addrset

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"strings"
)

// Range is an inclusive range of addresses of one family.
type Range struct {
	From, To netip.Addr
}

// Contains reports whether a lies within r.
func (r Range) Contains(a netip.Addr) bool {
	return r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0
}

// Prefix returns r as a single prefix when it is exactly one.
func (r Range) Prefix() (netip.Prefix, bool) {
	bits := r.From.BitLen()
	for l := 0; l <= bits; l++ {
		p := netip.PrefixFrom(r.From, l).Masked()
		if p.Addr() != r.From {
			continue
		}
		if lastAddr(p) == r.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func (r Range) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.From.String() + "-" + r.To.String()
}

// Set is an immutable set of IPv4 and IPv6 addresses. The zero value is empty.
type Set struct {
	v4, v6 []Range
}

// All returns the set of every IPv4 and IPv6 address.
func All() Set {
	return Of(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
}

// Of returns the set holding exactly the given prefixes.
func Of(prefixes ...netip.Prefix) Set {
	var b Builder
	for _, p := range prefixes {
		b.AddPrefix(p)
	}
	return b.Set()
}

// OfAddrs returns the set holding exactly the given addresses.
func OfAddrs(addrs ...netip.Addr) Set {
	var b Builder
	for _, a := range addrs {
		b.AddAddr(a)
	}
	return b.Set()
}

// FromCanonical returns the set of the given ranges, which must already be
// in canonical form: each list in its family, sorted, disjoint and
// non-adjacent, every range with From <= To. It checks that in one pass
// instead of sorting and merging as a Builder does, which matters when
// converting sets of thousands of ranges computed elsewhere in canonical form.
// The set takes the slices over: the caller must not modify them afterwards.
func FromCanonical(v4, v6 []Range) (Set, error) {
	if err := checkCanonical(v4, true); err != nil {
		return Set{}, fmt.Errorf("addrset: IPv4 ranges: %w", err)
	}
	if err := checkCanonical(v6, false); err != nil {
		return Set{}, fmt.Errorf("addrset: IPv6 ranges: %w", err)
	}
	if len(v4) == 0 {
		v4 = nil
	}
	if len(v6) == 0 {
		v6 = nil
	}
	return Set{v4: v4, v6: v6}, nil
}

func checkCanonical(rs []Range, v4 bool) error {
	for i, r := range rs {
		switch {
		case !r.From.IsValid() || !r.To.IsValid() || r.From.Is4() != v4 || r.To.Is4() != v4 || r.From.Zone() != "" || r.To.Zone() != "":
			return fmt.Errorf("range %d (%v-%v): wrong family or zoned", i, r.From, r.To)
		case r.From.Compare(r.To) > 0:
			return fmt.Errorf("range %d (%v-%v): reversed", i, r.From, r.To)
		case i > 0 && rs[i-1].From.Compare(r.From) > 0:
			return fmt.Errorf("range %d (%v-%v): out of order", i, r.From, r.To)
		case i > 0 && touches(spanOf(rs[i-1]), spanOf(r)):
			return fmt.Errorf("range %d (%v-%v): overlaps or adjoins the one before", i, r.From, r.To)
		}
	}
	return nil
}

// IsEmpty reports whether s holds no address.
func (s Set) IsEmpty() bool { return len(s.v4) == 0 && len(s.v6) == 0 }

// V4 returns the IPv4 ranges in order. The caller must not modify them.
func (s Set) V4() []Range { return s.v4 }

// V6 returns the IPv6 ranges in order. The caller must not modify them.
func (s Set) V6() []Range { return s.v6 }

// Contains reports whether a is in s. IPv4-mapped IPv6 addresses are not
// unmapped: the kernel sees them as IPv6, so must we.
func (s Set) Contains(a netip.Addr) bool {
	rs := s.v4
	if a.Is6() {
		rs = s.v6
	}
	_, found := slices.BinarySearchFunc(rs, a, func(r Range, a netip.Addr) int {
		if r.To.Compare(a) < 0 {
			return -1
		}
		if r.From.Compare(a) > 0 {
			return 1
		}
		return 0
	})
	return found
}

// Equal reports whether s and t hold the same addresses. Sets sharing their
// ranges (copies of one Set value) compare in constant time, which lets the
// dataplane skip the sets a sync did not touch.
func (s Set) Equal(t Set) bool {
	return sameRanges(s.v4, t.v4) && sameRanges(s.v6, t.v6)
}

// Hash returns a hash of the addresses under seed: equal sets hash equal,
// so sets can be grouped by content without comparing every pair.
func (s Set) Hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, rs := range [][]Range{s.v4, s.v6} {
		for _, r := range rs {
			from, to := r.From.As16(), r.To.As16()
			h.Write(from[:])
			h.Write(to[:])
		}
		h.WriteByte(0) // the families apart
	}
	return h.Sum64()
}

// Distinct groups equal sets: it returns, for each of sets, the index of
// the first set equal to it.
func Distinct(sets []Set) []int {
	seed := maphash.MakeSeed()
	first := make([]int, len(sets))
	byHash := map[uint64][]int{}
	for i, s := range sets {
		first[i] = i
		h := s.Hash(seed)
		for _, j := range byHash[h] {
			if sets[j].Equal(s) {
				first[i] = j
				break
			}
		}
		if first[i] == i {
			byHash[h] = append(byHash[h], i)
		}
	}
	return first
}

func sameRanges(a, b []Range) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

// Union returns the addresses in s or t.
func (s Set) Union(t Set) Set {
	if t.IsEmpty() {
		return s
	}
	if s.IsEmpty() {
		return t
	}
	return UnionSpans([]Spans{SpansOf(s), SpansOf(t)}).Set()
}

// Subtract returns the addresses in s and not in t.
func (s Set) Subtract(t Set) Set {
	if s.IsEmpty() || t.IsEmpty() {
		return s
	}
	return SubtractSpans(SpansOf(s), SpansOf(t)).Set()
}

// Intersect returns the addresses in both s and t.
func (s Set) Intersect(t Set) Set {
	if s.IsEmpty() || t.IsEmpty() {
		return Set{}
	}
	return s.Subtract(s.Subtract(t))
}

// Len returns the number of ranges in s, both families together.
func (s Set) Len() int { return len(s.v4) + len(s.v6) }

// String lists the ranges, IPv4 first, as prefixes where they are prefixes.
func (s Set) String() string {
	parts := make([]string, 0, s.Len())
	for _, r := range s.v4 {
		parts = append(parts, r.String())
	}
	for _, r := range s.v6 {
		parts = append(parts, r.String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Builder collects addresses and ranges and normalises them once, which keeps
// building a set of n pod addresses at O(n log n).
type Builder struct {
	v4, v6 []Range
}

// AddAddr adds one address. Zone and IPv4-mapping are kept as the kernel
// would see them: a zoned address is added without its zone.
func (b *Builder) AddAddr(a netip.Addr) {
	a = a.WithZone("")
	b.AddRange(Range{From: a, To: a})
}

// AddPrefix adds every address of p.
func (b *Builder) AddPrefix(p netip.Prefix) {
	p = p.Masked()
	b.AddRange(Range{From: p.Addr(), To: lastAddr(p)})
}

// AddRange adds r. It panics if r mixes families or is reversed, which is a
// programming error: ranges come from prefixes or single addresses.
func (b *Builder) AddRange(r Range) {
	if r.From.Is4() != r.To.Is4() || r.From.Compare(r.To) > 0 {
		panic(fmt.Sprintf("addrset: invalid range %v-%v", r.From, r.To))
	}
	if r.From.Is4() {
		b.v4 = append(b.v4, r)
	} else {
		b.v6 = append(b.v6, r)
	}
}

// AddSet adds every address of s.
func (b *Builder) AddSet(s Set) {
	b.v4 = append(b.v4, s.v4...)
	b.v6 = append(b.v6, s.v6...)
}

// Set returns the canonical set of everything added so far.
func (b *Builder) Set() Set {
	return Spans{normalize(b.v4), normalize(b.v6)}.Set()
}

// normalize turns ranges of one family, in any order and overlapping, into
// canonical spans.
func normalize(rs []Range) []span {
	if len(rs) == 0 {
		return nil
	}
	list := make([]span, len(rs))
	for i, r := range rs {
		list[i] = spanOf(r)
	}
	return canonical(list)
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	out := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		return out.Unmap()
	}
	return out
}
