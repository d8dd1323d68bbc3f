package kernel

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/kube-fence/kube-fence/internal/testenv"
)

// handleOf finds the handle of the first rule in chain whose text contains
// substr, from `nft -a list chain`.
func handleOf(t *testing.T, out, substr string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, substr) {
			if m := regexp.MustCompile(`# handle (\d+)`).FindStringSubmatch(line); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no rule containing %q in:\n%s", substr, out)
	return ""
}

func TestVerifyNamesTamperingAndRepairFixesIt(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipOff)
	want := nft.Render(testPlan())
	if _, err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	list := mustRun(t, ns, "nft", "-a", "list", "chain", "inet", nft.TableName, "ingress-v4")
	cases := []struct {
		name    string
		tamper  [][]string
		wantMsg []string
	}{
		{
			name:    "rule deleted",
			tamper:  [][]string{{"delete", "rule", "inet", nft.TableName, "ingress-v4", "handle", handleOf(t, list, "vmap @ingress-pods-v4")}},
			wantMsg: []string{"chain ingress-v4: rule 2 is ip daddr @pod-cidrs-v4 goto drop-unknown-address", "chain ingress-v4: rule 3 missing: ip daddr @pod-cidrs-v4 goto drop-unknown-address"},
		},
		{
			name:    "element deleted",
			tamper:  [][]string{{"delete", "element", "inet", nft.TableName, "ingress-pods-v4", "{", "10.42.0.10", "}"}},
			wantMsg: []string{`set ingress-pods-v4: missing element 10.42.0.10 comment "x/a" : goto ingress-i000000000001`},
		},
		{
			name: "element changed and foreign objects added",
			tamper: [][]string{
				{"delete", "element", "inet", nft.TableName, "egress-pods-v4", "{", "10.42.0.11", "}"},
				{"add", "element", "inet", nft.TableName, "egress-pods-v4", "{", "10.42.0.11", ":", "accept", "}"},
				{"add", "chain", "inet", nft.TableName, "intruder"},
				{"add", "set", "inet", nft.TableName, "intruder-set", "{", "type", "ipv4_addr", ";", "}"},
				{"add", "rule", "inet", nft.TableName, "forward", "ip", "saddr", "10.9.9.9", "accept"},
			},
			wantMsg: []string{
				`set egress-pods-v4: element is 10.42.0.11 : accept, want 10.42.0.11 comment "x/b" : return`,
				"chain intruder: not wanted", "set intruder-set: not wanted", "chain forward: unexpected rule 5: ip saddr 10.9.9.9 accept",
			},
		},
		{
			name:    "peer range shrunk",
			tamper:  [][]string{{"delete", "element", "inet", nft.TableName, "peer-00000000000b-v4", "{", "192.168.0.0/16", "}"}},
			wantMsg: []string{"set peer-00000000000b-v4: missing element 192.168.0.0/16"},
		},
		{
			name:   "drop chain emptied",
			tamper: [][]string{{"flush", "chain", "inet", nft.TableName, "drop-ingress"}},
			wantMsg: []string{"chain drop-ingress: rule 1 missing: limit rate over 100/second burst 100 packets counter drop",
				`chain drop-ingress: rule 2 missing: log prefix "kube-fence deny ingress" group 1617 drop`},
		},
		{
			name:    "table deleted",
			tamper:  [][]string{{"delete", "table", "inet", nft.TableName}},
			wantMsg: []string{"table inet kube-fence: missing"},
		},
		{
			name:    "ruleset flushed",
			tamper:  [][]string{{"flush", "ruleset"}},
			wantMsg: []string{"table inet kube-fence: missing"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range tc.tamper {
				mustRun(t, ns, "nft", args...)
			}
			d, err := c.Verify(want)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(d.Differences, "\n")
			for _, m := range tc.wantMsg {
				if !strings.Contains(got, m) {
					t.Errorf("differences lack %q; got:\n%s", m, got)
				}
			}
			res, err := c.Repair(want)
			if err != nil {
				t.Fatalf("repair: %v", err)
			}
			if res.Messages == 0 {
				t.Error("repair sent nothing")
			}
			requireNoDiff(t, c, want, "after repair")
		})
	}
}

func TestOwnershipProtectsAndPersists(t *testing.T) {
	ns := testenv.NetNS(t)
	want := nft.Render(testPlan())
	first, err := Open(Options{NetNSFD: ns.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.Sync(want); err != nil {
		t.Fatal(err)
	}
	// Other processes can neither flush nor delete nor edit the table.
	mustRun(t, ns, "nft", "flush", "ruleset")
	if out, err := run(ns, "nft", "delete", "table", "inet", nft.TableName); err == nil {
		t.Errorf("nft delete table succeeded on an owned table:\n%s", out)
	}
	if out, err := run(ns, "nft", "delete", "element", "inet", nft.TableName, "ingress-pods-v4", "{", "10.42.0.10", "}"); err == nil {
		t.Errorf("nft delete element succeeded on an owned table:\n%s", out)
	}
	requireNoDiff(t, first, want, "after foreign flush and delete attempts")

	// A second kube-fence cannot take the table from a live owner.
	second, err := Open(Options{NetNSFD: ns.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := second.Repair(want); !errors.Is(err, ErrOwnedElsewhere) {
		t.Fatalf("second owner: err = %v, want ErrOwnedElsewhere", err)
	}

	// The owner goes away: the table stays (persist) and the next
	// kube-fence adopts it without rebuilding.
	first.Close()
	requireNoDiff(t, second, want, "after the owner closed")
	res, err := second.Repair(want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rebuilt {
		t.Error("adopting an orphaned table rebuilt it; want adoption in place")
	}
	if out := mustRun(t, ns, "nft", "list", "table", "inet", nft.TableName); !strings.Contains(out, "flags owner") {
		t.Errorf("adopted table is not owned:\n%s", out)
	}

	// Cleanup removes it.
	if err := second.DeleteTable(); err != nil {
		t.Fatal(err)
	}
	if out, err := run(ns, "nft", "list", "table", "inet", nft.TableName); err == nil {
		t.Errorf("table still present after DeleteTable:\n%s", out)
	}
}

func TestOwnershipFallsBackWhenKernelRefusesFlags(t *testing.T) {
	ns := testenv.NetNS(t)
	c, err := Open(Options{NetNSFD: ns.FD(), unsupportedFlags: 0x80})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := nft.Render(testPlan())
	if _, err := c.Sync(want); err != nil {
		t.Fatalf("sync with flags the kernel refuses: %v", err)
	}
	if got := c.OwnershipState(); !strings.HasPrefix(got, "unsupported") {
		t.Errorf("ownership = %q, want unsupported", got)
	}
	requireNoDiff(t, c, want, "after fallback")
	info, err := readTableInfo(c.read)
	if err != nil || info == nil || info.Flags != 0 {
		t.Errorf("fallback table header = %+v, %v; want a table without flags", info, err)
	}
}

func TestSwitchingOwnershipRebuildsAtomically(t *testing.T) {
	ns := testenv.NetNS(t)
	want := nft.Render(testPlan())
	off := openConn(t, ns, OwnershipOff)
	if _, err := off.Sync(want); err != nil {
		t.Fatal(err)
	}
	on := openConn(t, ns, OwnershipAuto)
	res, err := on.Repair(want)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rebuilt {
		t.Error("an unowned table cannot gain the owner flag in place; want a rebuild")
	}
	requireNoDiff(t, on, want, "after taking ownership")
	if out := mustRun(t, ns, "nft", "list", "table", "inet", nft.TableName); !strings.Contains(out, "flags owner") {
		t.Errorf("table not owned after rebuild:\n%s", out)
	}
}
