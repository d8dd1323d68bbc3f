package kernel

import (
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

func openConn(t *testing.T, ns *netns.NS, o Ownership) *Conn {
	t.Helper()
	c, err := Open(Options{NetNSFD: ns.FD(), Ownership: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs a command in ns and returns its output; exit status in err.
func run(ns *netns.NS, name string, args ...string) (string, error) {
	out, err := ns.Command(name, args...)
	return string(out), err
}

func mustRun(t *testing.T, ns *netns.NS, name string, args ...string) string {
	t.Helper()
	out, err := run(ns, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func requireNoDiff(t *testing.T, c *Conn, want *nft.Table, when string) {
	t.Helper()
	d, err := c.Verify(want)
	if err != nil {
		t.Fatalf("%s: verify: %v", when, err)
	}
	if !d.Empty() {
		t.Fatalf("%s: kernel table differs from the desired one:\n  %s", when, strings.Join(d.Differences, "\n  "))
	}
}

func TestApplyReadBackIsExact(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipAuto)
	want := nft.Render(testPlan())
	res, err := c.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rebuilt || res.Messages == 0 {
		t.Errorf("first sync: rebuilt=%v messages=%d; want a plain create", res.Rebuilt, res.Messages)
	}
	requireNoDiff(t, c, want, "after first sync")

	// A second sync of the same table sends nothing.
	res, err = c.Sync(want)
	if err != nil || res.Messages != 0 {
		t.Fatalf("second sync: messages=%d err=%v; want nothing sent", res.Messages, err)
	}
	if got := c.OwnershipState(); got != "owner,persist" {
		t.Errorf("ownership = %q, want owner,persist on this kernel", got)
	}
	// nft agrees it is one table with the owner flag.
	out := mustRun(t, ns, "nft", "list", "table", "inet", nft.TableName)
	if !strings.Contains(out, "flags owner") {
		t.Errorf("nft list shows no owner flag:\n%s", out)
	}
}

func TestTextLoadedByNftEqualsNetlinkTable(t *testing.T) {
	testenv.RequireBinary(t, "nft", "nftables")
	ns := testenv.NetNS(t)
	want := nft.Render(testPlan())
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft.Text(want))
	if err := ns.Do(func() error {
		b, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(string(b))
		}
		return nil
	}); err != nil {
		t.Fatalf("nft -f of the rendered text: %v\n%s", err, nft.Text(want))
	}
	c := openConn(t, ns, OwnershipOff)
	requireNoDiff(t, c, want, "table loaded by nft -f")
}

func TestIncrementalChangesAreElementUpdates(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipAuto)
	pl := testPlan()
	if _, err := c.Sync(nft.Render(pl)); err != nil {
		t.Fatal(err)
	}
	// A new pod on the node: only verdict map elements change.
	pl.Pods = append(pl.Pods, plan.LocalPod{Namespace: "x", Name: "c",
		IPs: []netip.Addr{netip.MustParseAddr("10.42.0.12"), netip.MustParseAddr("fd00:10:42::12")}, Ingress: "i000000000001"})
	want := nft.Render(pl)
	res, err := c.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	added, deleted := res.Delta.Elements()
	if len(res.Delta.AddSets)+len(res.Delta.AddChains)+len(res.Delta.ReplaceRules) != 0 || added != 4 || deleted != 0 {
		t.Errorf("pod added: delta %v; want exactly 4 element additions", res.Delta.Differences)
	}
	requireNoDiff(t, c, want, "after adding a pod")

	// A peer appears in a port class: one interval element changes.
	prof := pl.Profile("i000000000001")
	prof.Ports[1].Peers = prof.Ports[1].Peers.Union(addrset.OfAddrs(netip.MustParseAddr("10.42.0.99")))
	want = nft.Render(pl)
	res, err = c.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Delta.ReplaceRules)+len(res.Delta.AddChains) != 0 || res.Messages > 6 {
		t.Errorf("peer added: %d messages, delta %v; want a few element messages", res.Messages, res.Delta.Differences)
	}
	requireNoDiff(t, c, want, "after adding a peer")

	// The pod leaves the profile's selection: its elements are updated in
	// place, the profile chains stay.
	pl.Pods[2].Ingress = ""
	want = nft.Render(pl)
	if _, err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	requireNoDiff(t, c, want, "after unselecting a pod")

	// Everything removed: profile chains, sets and maps go in one step.
	pl.Pods, pl.Profiles = nil, nil
	want = nft.Render(pl)
	if _, err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	requireNoDiff(t, c, want, "after removing all profiles")
}
