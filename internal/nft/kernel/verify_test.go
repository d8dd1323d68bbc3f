package kernel

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// syncAndVerify applies want and checks that reading back what the
// transaction changed finds nothing wrong.
func syncAndVerify(t *testing.T, c *Conn, want *nft.Table, when string) *nft.Result {
	t.Helper()
	res, err := c.Sync(want)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	d, err := c.VerifyApplied(want, res.Delta)
	if err != nil {
		t.Fatalf("%s: verify applied: %v", when, err)
	}
	if !d.Empty() {
		t.Fatalf("%s: verify applied found differences right after the apply:\n  %s", when, strings.Join(d.Differences, "\n  "))
	}
	requireNoDiff(t, c, want, when)
	return res
}

// edit replaces a profile of plan with an edited copy: a Renderer reuses
// what it rendered for a profile value, so profiles, like plans, are never
// changed in place.
func edit(pl *plan.Plan, id plan.ProfileID, f func(*plan.Profile)) {
	for i, p := range pl.Profiles {
		if p.ID == id {
			cp := *p
			cp.Ports = append([]plan.PortClass(nil), p.Ports...)
			f(&cp)
			pl.Profiles[i] = &cp
		}
	}
}

// TestVerifyAppliedAfterEachKindOfChange applies every kind of change the
// table sees (new and removed pods, sets growing, shrinking and merging
// ranges, port classes merging, profiles appearing and going) and checks
// that the read back of what changed agrees with the full read back.
func TestVerifyAppliedAfterEachKindOfChange(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipOff)
	pl := testPlan()
	var r nft.Renderer
	syncAndVerify(t, c, r.Render(pl), "first sync")

	a := netip.MustParseAddr
	pl.Pods = append(pl.Pods, plan.LocalPod{Namespace: "x", Name: "c",
		IPs: []netip.Addr{a("10.42.0.12"), a("fd00:10:42::12")}, Ingress: "i000000000001"})
	syncAndVerify(t, c, r.Render(pl), "pod added")

	edit(pl, "i000000000001", func(p *plan.Profile) {
		p.Any = p.Any.Union(addrset.OfAddrs(a("10.42.0.12"), a("10.42.0.99"))) // grows, merges with .11
		p.Ports[1].Peers = p.Ports[1].Peers.Subtract(addrset.Of(netip.MustParsePrefix("192.168.7.0/24")))
	})
	syncAndVerify(t, c, r.Render(pl), "ranges grown, merged and split")

	edit(pl, "i000000000001", func(p *plan.Profile) {
		p.Ports = []plan.PortClass{{Protocol: plan.TCP, First: 80, Last: 8080, Peers: addrset.All()}}
		p.Any = addrset.OfAddrs(a("10.42.0.11"))
	})
	syncAndVerify(t, c, r.Render(pl), "port classes merged, classes gone")

	pl.Pods[0].Egress = ""
	pl.Pods = pl.Pods[:2]
	pl.Profiles = pl.Profiles[1:]
	syncAndVerify(t, c, r.Render(pl), "pod and egress profile gone")

	pl.DefaultDenyUnknown = false
	res := syncAndVerify(t, c, r.Render(pl), "pod CIDRs emptied")
	if res.Messages == 0 {
		t.Fatal("emptying the pod CIDR sets sent nothing")
	}
}

// TestVerifyAppliedSeesWhatTheTransactionTouched tampers with objects a
// transaction changed, and with one it did not: the first is reported, the
// second is left to the full verification.
func TestVerifyAppliedSeesWhatTheTransactionTouched(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipOff)
	pl := testPlan()
	var r nft.Renderer
	syncAndVerify(t, c, r.Render(pl), "first sync")

	a := netip.MustParseAddr
	pl.Pods = append(pl.Pods, plan.LocalPod{Namespace: "x", Name: "c", IPs: []netip.Addr{a("10.42.0.12")}, Ingress: "i000000000001"})
	edit(pl, "i000000000001", func(p *plan.Profile) { p.Any = p.Any.Union(addrset.OfAddrs(a("10.42.0.50"))) })
	want := r.Render(pl)
	res, err := c.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, ns, "nft", "delete", "element", "inet", nft.TableName, "ingress-pods-v4", "{", "10.42.0.12", "}")
	mustRun(t, ns, "nft", "delete", "element", "inet", nft.TableName, "ingress-i000000000001-any-v4-h", "{", "10.42.0.50", "}")
	mustRun(t, ns, "nft", "delete", "element", "inet", nft.TableName, "egress-pods-v6", "{", "fd00:10:42::11", "}")
	d, err := c.VerifyApplied(want, res.Delta)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(d.Differences, "\n")
	for _, w := range []string{
		`set ingress-pods-v4: missing element 10.42.0.12 comment "x/c" : goto ingress-i000000000001`,
		"set ingress-i000000000001-any-v4-h: missing element 10.42.0.50",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("verify applied does not report %q; it reports:\n%s", w, text)
		}
	}
	if strings.Contains(text, "egress-pods-v6") {
		t.Errorf("verify applied read a set the transaction did not touch:\n%s", text)
	}
	full, err := c.Verify(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(full.Differences, "\n"), "set egress-pods-v6: missing element fd00:10:42::11") {
		t.Errorf("full verification misses the untouched set's change: %v", full.Differences)
	}

	// Rules of a chain the transaction replaced.
	edit(pl, "i000000000001", func(p *plan.Profile) { p.Policies = []string{"x/other"} })
	want = r.Render(pl)
	if res, err = c.Sync(want); err != nil {
		t.Fatal(err)
	}
	if len(res.Delta.ReplaceRules) != 1 {
		t.Fatalf("a new comment replaced %d chains, want 1", len(res.Delta.ReplaceRules))
	}
	mustRun(t, ns, "nft", "add", "rule", "inet", nft.TableName, "ingress-i000000000001", "ip", "saddr", "10.9.9.9", "accept")
	d, err = c.VerifyApplied(want, res.Delta)
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(d.Differences, "\n"); !strings.Contains(text, "chain ingress-i000000000001: unexpected rule 5: ip saddr 10.9.9.9 accept") {
		t.Errorf("verify applied misses a rule added to a replaced chain:\n%s", text)
	}
}

// TestVerifyAppliedSeesDeletedElementsComeBack puts back, with another
// verdict, an element a transaction deleted.
func TestVerifyAppliedSeesDeletedElementsComeBack(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipOff)
	pl := testPlan()
	var r nft.Renderer
	syncAndVerify(t, c, r.Render(pl), "first sync")
	pl.Pods = pl.Pods[:1] // x/b goes
	// Any keeps an address, so its sets stay in the table.
	edit(pl, "i000000000001", func(p *plan.Profile) { p.Any = addrset.OfAddrs(netip.MustParseAddr("10.42.0.99")) })
	want := r.Render(pl)
	res, err := c.Sync(want)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, ns, "nft", "add", "element", "inet", nft.TableName, "ingress-pods-v4", "{", "10.42.0.11", ":", "accept", "}")
	mustRun(t, ns, "nft", "add", "element", "inet", nft.TableName, "ingress-i000000000001-any-v6", "{", "fd00:10:42::11", "}")
	d, err := c.VerifyApplied(want, res.Delta)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(d.Differences, "\n")
	for _, w := range []string{
		"set ingress-pods-v4: unexpected element 10.42.0.11 : accept",
		"set ingress-i000000000001-any-v6: unexpected element fd00:10:42::11",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("verify applied does not report %q; it reports:\n%s", w, text)
		}
	}
}

// TestPeerSetKindChangeIsIncremental: a peer set of single addresses is a
// hash set, one with a range an interval set, and the kind is in the name.
// A set changing kind is then a new set beside the profile's replaced rules
// and the old set deleted, in one small transaction, never a rebuild (a set
// cannot change type in place).
func TestPeerSetKindChangeIsIncremental(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipOff)
	pl := testPlan()
	var r nft.Renderer
	syncAndVerify(t, c, r.Render(pl), "first sync")
	a := netip.MustParseAddr
	const hash, interval = "ingress-i000000000001-any-v4-h", "ingress-i000000000001-any-v4"
	for _, step := range []struct {
		name     string
		any      addrset.Set
		has, not string
		typ      nft.SetType
	}{
		{"a range joins the single addresses", addrset.OfAddrs(a("10.42.0.11"), a("10.42.0.12")), interval, hash, nft.Addr4},
		{"single addresses again", addrset.OfAddrs(a("10.42.0.11"), a("10.42.0.50")), hash, interval, nft.Host4},
	} {
		edit(pl, "i000000000001", func(p *plan.Profile) { p.Any = step.any })
		want := r.Render(pl)
		res := syncAndVerify(t, c, want, step.name)
		if res.Rebuilt {
			t.Errorf("%s: the table was rebuilt", step.name)
		}
		if s := want.Sets[step.has]; s == nil || s.Type != step.typ || want.Sets[step.not] != nil {
			t.Errorf("%s: want set %s of type %v and no set %s; sets: %v", step.name, step.has, step.typ, step.not, want.SetNames())
		}
		t.Logf("%s: %d messages, %d bytes", step.name, res.Messages, res.Bytes)
		if res.Messages > 20 {
			t.Errorf("%s: %d messages, want a small transaction", step.name, res.Messages)
		}
		full, err := c.Verify(want)
		if err != nil {
			t.Fatal(err)
		}
		if !full.Empty() {
			t.Errorf("%s: the kernel reads back different:\n%s", step.name, strings.Join(full.Differences, "\n"))
		}
	}
}
