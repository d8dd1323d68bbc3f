package conntrack

import (
	"fmt"
	"net/netip"
	"testing"

	ct "github.com/ti-mo/conntrack"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// BenchmarkCut measures one Cut over a table of 2×N entries (TCP
// established and UDP, both families) of which N are denied: the dump, the
// judging and N deletions. The entries are made over netlink between
// iterations, outside the timer (kernel-made entries carry status bits
// ctnetlink refuses to set, so these have none; Cut does not read them). It reports the time per deleted entry.
func BenchmarkCut(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("denied=%d", n), func(b *testing.B) {
			p := newPair(b)
			p.nft(b, table) // conntrack runs in a namespace once a rule uses it
			c, err := Dial(p.server.FD())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				fill(b, c, n)
				b.StartTimer()
				res, err := c.Cut(func(f Flow) bool { return f.Dst.Port() != 8081 }, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Cut) != n || res.Judged != 2*n {
					b.Fatalf("cut %d of %d judged entries, want %d of %d", len(res.Cut), res.Judged, n, 2*n)
				}
				b.StopTimer()
				if _, err := c.Cut(func(Flow) bool { return false }, nil); err != nil { // empty the table
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/deleted-entry")
		})
	}
}

// fill creates n entries to port 8081 (denied) and n to port 8080
// (allowed), alternating protocols and families.
func fill(b testing.TB, c *Conn, n int) {
	b.Helper()
	const established = 3
	for i := range 2 * n {
		src, dst := netip.AddrFrom4([4]byte{10, 98, byte(i >> 8), byte(i)}), netip.MustParseAddr("10.99.0.2")
		if i%4 >= 2 {
			src = netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x98, 14: byte(i >> 8), 15: byte(i)})
			dst = netip.MustParseAddr("fd00:99::2")
		}
		port := uint16(8080 + i%2)
		proto := uint8(plan.TCP)
		if i%8 >= 4 {
			proto = uint8(plan.UDP)
		}
		f := ct.NewFlow(proto, 0, src, dst, uint16(10000+i%50000), port, 600, 0)
		if proto == uint8(plan.TCP) {
			f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: established}
		}
		if err := c.c.Create(f); err != nil {
			b.Fatalf("create entry %d: %v", i, err)
		}
	}
}
