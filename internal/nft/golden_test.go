package nft

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mdlayher/netlink"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestEncodeGolden")

// TestEncodeGolden compares the netlink messages encoded for a few small
// tables with recorded bytes in testdata/: a regression net under the
// hand-written element encoder and the order of the transaction. The kernel
// tests prove the bytes are right; these notice when they change. After an
// intended change, run go test ./internal/nft -run TestEncodeGolden -update
// and read the diff.
func TestEncodeGolden(t *testing.T) {
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	onePod := &plan.Plan{Node: "n1", Pods: []plan.LocalPod{{Namespace: "x", Name: "a", IPs: []netip.Addr{a("10.42.0.10")}}}}
	small := Render(testPlan())
	grown := testPlan()
	grown.Pods = append(grown.Pods, plan.LocalPod{Namespace: "x", Name: "c", IPs: []netip.Addr{a("10.42.0.12")}, Ingress: "i000000000001"})
	grown.NodeAddrs = addrset.Of(p("192.168.100.0/30"))
	for _, tc := range []struct {
		name       string
		want, have *Table
		rebuild    bool
	}{
		{name: "empty-plan", want: Render(&plan.Plan{})},
		{name: "one-pod", want: Render(onePod)},
		{name: "test-plan", want: small},
		{name: "test-plan-rebuilt", want: small, rebuild: true},
		{name: "pod-added", want: Render(grown), have: small},
		{name: "table-deleted", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []netlink.Message
			var err error
			if tc.want == nil {
				msgs, err = EncodeDeleteTable()
			} else {
				msgs, err = EncodeDelta(Diff(tc.want, tc.have), tc.want, tc.rebuild)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := dumpMessages(renumberSetIDs(t, msgs))
			file := filepath.Join("testdata", "encode-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to record it)", err)
			}
			if got != string(want) {
				t.Errorf("encoded messages differ from %s (run with -update after an intended change):\n%s", file, firstDiff(string(want), got))
			}
		})
	}
}

// renumberSetIDs replaces the set IDs google/nftables draws from a
// process-wide counter by 1, 2, ... in the order of the transaction, so the
// bytes do not depend on what ran before.
func renumberSetIDs(t *testing.T, msgs []netlink.Message) []netlink.Message {
	newSet := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET)
	next := uint32(0)
	out := make([]netlink.Message, len(msgs))
	for i, m := range msgs {
		out[i] = m
		if m.Header.Type != newSet {
			continue
		}
		data := slices.Clone(m.Data)
		for off := 4; off+4 <= len(data); {
			l := int(binary.NativeEndian.Uint16(data[off:]))
			if l < 4 {
				t.Fatalf("bad attribute length %d", l)
			}
			if binary.NativeEndian.Uint16(data[off+2:])&0x3fff == unix.NFTA_SET_ID && l == 8 {
				next++
				binary.BigEndian.PutUint32(data[off+4:], next)
			}
			off += (l + 3) &^ 3
		}
		out[i].Data = data
	}
	return out
}

// dumpMessages prints each message as its description, header type and
// flags, and its payload in hex, 32 bytes a line.
func dumpMessages(msgs []netlink.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%s type=%#04x flags=%#04x len=%d\n", DescribeMessage(m), uint16(m.Header.Type), uint16(m.Header.Flags), len(m.Data))
		for i := 0; i < len(m.Data); i += 32 {
			fmt.Fprintf(&b, "  %s\n", hex.EncodeToString(m.Data[i:min(i+32, len(m.Data))]))
		}
	}
	return b.String()
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, w, g)
		}
	}
	return "(no line differs)"
}

// TestUnknownHookIsAnError: a base chain on a hook that is not one of the
// five is refused, never sent as another hook.
func TestUnknownHookIsAnError(t *testing.T) {
	tb := NewTable()
	tb.AddChain(&Chain{Name: "odd", Hook: &Hook{Hook: HookPoint(42), Policy: "accept"}})
	if _, err := EncodeDelta(Diff(tb, nil), tb, false); err == nil || !strings.Contains(err.Error(), "unknown hook") {
		t.Fatalf("encoding a chain on hook 42: err = %v, want unknown hook", err)
	}
	tb.Chains["odd"].Hook = &Hook{Hook: HookForward, Policy: "accept", Type: "nat"}
	if _, err := EncodeDelta(Diff(tb, nil), tb, false); err == nil {
		t.Fatal("encoding a nat chain: no error")
	}
}
