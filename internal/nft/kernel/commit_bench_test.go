package kernel

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// BenchmarkCommitOneElement adds one address to an interval set of growing
// size and removes it again, one transaction each, and reports the time of
// each transaction (sent to acknowledged). It shows what bounds an
// incremental change at scale: on Linux 6.18 committing a transaction that
// touches an interval set walks the whole set.
//
//	go test ./internal/nft -run XXX -bench CommitOneElement -benchtime 20x
func BenchmarkCommitOneElement(b *testing.B) {
	testenv.RequireRoot(b)
	for _, n := range []int{10, 1000, 4000, 20000} {
		b.Run(fmt.Sprintf("set=%d", n), func(b *testing.B) {
			ns := testenv.NetNS(b)
			c, err := Open(Options{NetNSFD: ns.FD(), Ownership: OwnershipOff})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rs := make([]addrset.Range, n)
			for i := range rs { // every other address: n separate ranges
				a := netip.AddrFrom4([4]byte{10, byte(2 * i >> 16), byte(2 * i >> 8), byte(2 * i)})
				rs[i] = addrset.Range{From: a, To: a}
			}
			base := nft.NewTable()
			base.AddSet(&nft.Set{Name: "s", Type: nft.Addr4, Ranges: rs})
			extra := netip.MustParseAddr("11.0.0.1")
			more := nft.NewTable()
			more.AddSet(&nft.Set{Name: "s", Type: nft.Addr4, Ranges: append(rs[:len(rs):len(rs)], addrset.Range{From: extra, To: extra})})
			if _, err := c.Sync(base); err != nil {
				b.Fatal(err)
			}
			var add, del float64
			for b.Loop() {
				res, err := c.Sync(more)
				if err != nil {
					b.Fatal(err)
				}
				add += float64(res.Duration.Nanoseconds())
				if res, err = c.Sync(base); err != nil {
					b.Fatal(err)
				}
				del += float64(res.Duration.Nanoseconds())
			}
			b.ReportMetric(add/float64(b.N)/1e6, "ms-add/op")
			b.ReportMetric(del/float64(b.N)/1e6, "ms-delete/op")
		})
	}
}
