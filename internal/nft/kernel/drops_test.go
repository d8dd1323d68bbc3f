package kernel

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestReadSuppressed: the rate limit of a drop chain, as rendered, counts
// the packets above it, and ReadSuppressed reads that count back. The
// rendered table is extended, for the test only, with an output chain
// sending loopback UDP to drop-egress, so packets reach it without a
// forwarding setup.
func TestReadSuppressed(t *testing.T) {
	nftBin := testenv.RequireBinary(t, "nft", "nftables")
	ns := testenv.NetNS(t)
	got, err := ReadSuppressed(ns.FD())
	if err != nil || len(got) != 0 {
		t.Fatalf("no table: ReadSuppressed = %v, %v; want nothing and no error", got, err)
	}

	r := nft.Renderer{DropLog: nft.DropLog{Rate: 1, Burst: 1}}
	text := nft.Text(r.Render(testPlan()))
	text = strings.TrimSuffix(text, "}\n") + "\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 9999 goto drop-egress\n\t}\n}\n"
	cmd := exec.Command(nftBin, "-f", "-")
	cmd.Stdin = strings.NewReader(text)
	if err := ns.Do(func() error {
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatalf("load the table: %v", err)
	}

	const sent = 20
	err = ns.Do(func() error {
		c, err := net.Dial("udp", "127.0.0.1:9999")
		if err != nil {
			return err
		}
		defer c.Close()
		for range sent {
			_, _ = c.Write([]byte("x"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = ReadSuppressed(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	// One token in the bucket: the first packet is logged, nearly all the
	// rest are not (one more may be logged if a second passed).
	if n := got[nft.LogChain{Side: droplog.SideEgress}]; n < sent-3 || n > sent-1 {
		t.Errorf("suppressed on egress = %d after %d packets at 1/second burst 1, want %d-%d", n, sent, sent-3, sent-1)
	}
	if got[nft.LogChain{Side: droplog.SideIngress}] != 0 || got[nft.LogChain{Side: droplog.SideUnknownAddress}] != 0 {
		t.Errorf("other sides counted packets: %v", got)
	}
	// The counter's values are not part of the rule: a read back after
	// traffic finds the drop chain as rendered.
	c := openConn(t, ns, OwnershipOff)
	d, err := c.Verify(r.Render(testPlan()))
	if err != nil {
		t.Fatal(err)
	}
	for _, diff := range d.Differences {
		if strings.Contains(diff, "drop-egress") {
			t.Errorf("read back after counting: %s", diff)
		}
	}
	if _, ok := got[nft.LogChain{Side: droplog.SideIngress}]; !ok {
		t.Errorf("ingress missing from %v: its drop chain exists", got)
	}
}
