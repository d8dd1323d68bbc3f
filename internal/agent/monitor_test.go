package agent

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestMonitorReportsOnlyForeignChangesToOurTable runs the notification filter
// against the real kernel: the agent's own transactions and other programs'
// changes to their own tables must not wake the writer, a foreign change to
// kube-fence's table must, within milliseconds.
func TestMonitorReportsOnlyForeignChangesToOurTable(t *testing.T) {
	testenv.RequireRoot(t)
	ns := testenv.NetNS(t)
	conn, err := kernel.Open(kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	notify := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchNftables(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), ns.FD(), conn.PortID(), notify)
	}()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(100 * time.Millisecond) // let the subscription start

	quiet := func(what string) {
		t.Helper()
		select {
		case <-notify:
			t.Errorf("%s woke the writer; want it ignored", what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	woken := func(what string) {
		t.Helper()
		start := time.Now()
		select {
		case <-notify:
			t.Logf("%s reported after %v", what, time.Since(start))
		case <-time.After(2 * time.Second):
			t.Errorf("%s was not reported within 2s", what)
		}
	}
	nftCmd := func(args ...string) {
		t.Helper()
		if out, err := ns.Command("nft", args...); err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Our own transaction: the table, its chains, sets and elements.
	if _, err := conn.Sync(nft.Render(&plan.Plan{})); err != nil {
		t.Fatal(err)
	}
	quiet("kube-fence's own transaction")

	// Another program's own tables and rules, as iptables-nft or
	// kube-proxy would write them.
	nftCmd("add", "table", "ip", "filter")
	nftCmd("add", "chain", "ip", "filter", "FORWARD", "{ type filter hook forward priority 0; }")
	nftCmd("add", "rule", "ip", "filter", "FORWARD", "ct", "state", "established,related", "accept")
	nftCmd("add", "table", "inet", "other")
	nftCmd("add", "chain", "inet", "other", "c")
	quiet("changes to other tables")

	// Another process touching kube-fence's table.
	nftCmd("add", "chain", "inet", nft.TableName, "intruder")
	woken("a foreign chain in kube-fence's table")
	nftCmd("delete", "table", "inet", nft.TableName)
	woken("nft delete table")
}
