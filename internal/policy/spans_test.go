package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// TestSpansAgreeWithAddrset checks the compiler's integer set algebra
// against addrset, the plan's canonical form, on random sets that touch the
// edges of both address spaces.
func TestSpansAgreeWithAddrset(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	edges := []netip.Addr{
		netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("0:0:0:1::"),
	}
	randomAddr := func() netip.Addr {
		switch rnd.IntN(4) {
		case 0:
			return edges[rnd.IntN(len(edges))]
		case 1:
			return netip.AddrFrom4([4]byte{10, 0, byte(rnd.IntN(2)), byte(rnd.IntN(256))})
		case 2:
			return netip.AddrFrom16([16]byte{0xfd, 0, 7: byte(rnd.IntN(2)), 15: byte(rnd.IntN(256))})
		}
		var b [16]byte
		for i := range b {
			b[i] = byte(rnd.IntN(256))
		}
		return netip.AddrFrom16(b)
	}
	randomSet := func() (addrset.Set, spans) {
		var ab addrset.Builder
		var pb pointBuilder
		var parts []spans
		for range rnd.IntN(12) {
			a := randomAddr()
			if rnd.IntN(3) == 0 {
				p := netip.PrefixFrom(a, rnd.IntN(a.BitLen()+1)).Masked()
				ab.AddPrefix(p)
				parts = append(parts, spansOf(addrset.Of(p)))
				continue
			}
			ab.AddAddr(a)
			pb.addAddr(a)
		}
		return ab.Set(), unionSpans(append(parts, pb.build()))
	}
	for i := range 3000 {
		a, sa := randomSet()
		b, sb := randomSet()
		c, sc := randomSet()
		if !sa.toSet().Equal(a) {
			t.Fatalf("case %d: built %v, want %v", i, sa.toSet(), a)
		}
		if got, want := unionSpans([]spans{sa, sb, sc}).toSet(), a.Union(b).Union(c); !got.Equal(want) {
			t.Fatalf("case %d: union %v, want %v", i, got, want)
		}
		if got, want := subtractSpans(sa, sb).toSet(), a.Subtract(b); !got.Equal(want) {
			t.Fatalf("case %d: %v minus %v = %v, want %v", i, a, b, got, want)
		}
		if !spansOf(a).equal(sa) || (sa.equal(sb) != a.Equal(b)) {
			t.Fatalf("case %d: equality disagrees", i)
		}
		for range 10 {
			x := randomAddr()
			if sa.contains(keyOf(x), x.Is4()) != a.Contains(x) {
				t.Fatalf("case %d: contains(%v) disagrees with %v", i, x, a)
			}
		}
	}
}
