package listen

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// A table that logs like kube-fence's: two drops and one audit record on the
// output hook of a throwaway namespace, so loopback traffic hits them.
const logTable = `table inet droplog-test {
	chain out {
		type filter hook output priority 0; policy accept;
		udp dport 9999 log prefix "kube-fence deny egress" group 7 drop
		tcp dport 9998 log prefix "kube-fence deny ingress" group 7 drop
		udp dport 9997 log prefix "kube-fence would-deny egress" group 7
		udp dport 9996 log prefix "netbird drop" group 7 drop
	}
}
`

func TestReaderKernel(t *testing.T) {
	testenv.RequireRoot(t)
	nftBin := testenv.RequireBinary(t, "nft", "nftables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	cmd := exec.Command(nftBin, "-f", "-")
	cmd.Stdin = strings.NewReader(logTable)
	var out []byte
	if err := ns.Do(func() error { out, err = cmd.CombinedOutput(); return err }); err != nil {
		t.Fatalf("load the test table: %v\n%s", err, out)
	}

	r, err := Open(ns.FD(), 7)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	records := make(chan droplog.Record, 16)
	if err := r.Start(ctx, func(rec droplog.Record) { records <- rec }); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := r.Err(); err != nil {
			t.Errorf("reading stopped with %v", err)
		}
	}()

	err = ns.Do(func() error {
		for _, target := range []string{"127.0.0.1:9999", "[::1]:9997", "127.0.0.1:9996"} {
			c, err := net.Dial("udp", target)
			if err != nil {
				return err
			}
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
		c, err := net.DialTimeout("tcp", "[::1]:9998", 300*time.Millisecond)
		if err == nil {
			c.Close()
			t.Error("a TCP connection passed a drop rule")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"egress false 17 127.0.0.1 127.0.0.1 9999": true,
		"egress true 17 ::1 ::1 9997":              true,
		"ingress false 6 ::1 ::1 9998":             true,
	}
	deadline := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case rec := <-records:
			key := strings.Join([]string{string(rec.Side), boolString(rec.Audit), strconv.Itoa(int(rec.Protocol)),
				rec.Src.String(), rec.Dst.String(), strconv.Itoa(int(rec.DstPort))}, " ")
			if !want[key] {
				// A retransmitted SYN logs the same record again.
				if key != "ingress false 6 ::1 ::1 9998" {
					t.Errorf("unexpected record %s (%+v)", key, rec)
				}
			}
			delete(want, key)
		case <-deadline:
			t.Fatalf("records never came: %v", want)
		}
	}
	if n := r.Lost.Load(); n != 0 {
		t.Errorf("Lost = %d, want 0 (the other program's record is not kube-fence's to count)", n)
	}
}

func boolString(b bool) string { return strconv.FormatBool(b) }
