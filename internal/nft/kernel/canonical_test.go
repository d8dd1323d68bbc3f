package kernel

import (
	"net/netip"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/nft"
)

// TestCanonicalElemsDropsDumpDuplicates: an element a dump returned twice
// is one element, for exact maps and for interval sets alike.
func TestCanonicalElemsDropsDumpDuplicates(t *testing.T) {
	key := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	ret := &nft.Verdict{Kind: expr.VerdictReturn}
	m := []kernelElem{
		{key: key("10.42.0.3"), verdict: ret, comment: "x/b"},
		{key: key("10.42.0.2"), verdict: ret, comment: "x/a"},
		{key: key("10.42.0.2"), verdict: ret, comment: "x/a"},
		{key: key("10.42.0.3"), verdict: ret, comment: "x/b"},
	}
	if got := canonicalElems(nft.PodMap4, m); len(got) != 2 {
		t.Errorf("pod map: %d elements, want 2: %v", len(got), got)
	}
	// Interval sets come as start and end elements, highest key first.
	iv := []kernelElem{
		{key: key("10.42.0.4"), end: true},
		{key: key("10.42.0.2")},
		{key: key("10.42.0.4"), end: true},
		{key: key("10.42.0.2")},
	}
	if got := canonicalElems(nft.Addr4, iv); len(got) != 1 {
		t.Errorf("address set: %d elements, want 1: %v", len(got), got)
	}
}
