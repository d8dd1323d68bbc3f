package nft

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

func TestScratchKernelCost(t *testing.T) {
	ns := newNS(t)
	c := openConn(t, ns, OwnershipOff)
	for _, n := range []int{10, 1000, 4000, 20000} {
		var b addrset.Builder
		for i := 0; i < n; i++ {
			b.AddAddr(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).Next().Next()) // gaps: every address distinct ranges? consecutive merge
		}
		var rs []addrset.Range
		for i := 0; i < n; i++ {
			a := netip.AddrFrom4([4]byte{10, byte((2 * i) >> 16), byte((2 * i) >> 8), byte(2 * i)})
			rs = append(rs, addrset.Range{From: a, To: a})
		}
		tab := NewTable()
		tab.AddSet(&Set{Name: "s", Type: Addr4, Ranges: rs})
		if _, err := c.Sync(tab); err != nil {
			t.Fatal(err)
		}
		var total, send time.Duration
		for k := 0; k < 20; k++ {
			extra := netip.AddrFrom4([4]byte{11, 0, 0, byte(k)})
			rs2 := append(append([]addrset.Range{}, rs...), addrset.Range{From: extra, To: extra})
			t2 := NewTable()
			t2.AddSet(&Set{Name: "s", Type: Addr4, Ranges: rs2})
			t0 := time.Now()
			res, err := c.Sync(t2)
			if err != nil {
				t.Fatal(err)
			}
			total += time.Since(t0)
			send += res.Duration
			if _, err := c.Sync(tab); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("set of %d: add one element %v (send+commit %v)", n, total/20, send/20)
		c.DeleteTable()
		c.Forget()
	}
}
