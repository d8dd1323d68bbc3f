package doctor

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nlrules"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// fixable are native rules --fix rewrites, per family.
var fixable = map[string][]string{
	"ip": {
		`ct state established,related accept`,
		`ct state != established accept`,
		`ct state invalid drop`,
		`ct mark 0x10 accept`,
		`ct mark and 0xff == 0x10 accept`,
		`oifname "wt0" ct state established,related accept`,
		`fib daddr type local accept`,
		`fib saddr type != unicast drop`,
		`ip dscp 46 accept`,
		`ip dscp != 46 accept`,
	},
	"ip6": {
		`ct state established,related accept`,
		`ct state new drop`,
		`ct mark != 0x10 accept`,
		`iifname "wt0" ct state established,related accept`,
	},
}

// TestFixWithEachVersion: after --fix, each real release's -C, -S and
// iptables-save work on the table, and a save/restore round trip with that
// release gives back the same rules, byte for byte.
func TestFixWithEachVersion(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "nft", "nftables")
	for _, v := range differentialVersions {
		for _, family := range []string{"ip", "ip6"} {
			t.Run(string(v)+"/"+family, func(t *testing.T) {
				ipt := realIptables(t, v, family)
				ns := setupNS(t, ipt)
				for _, r := range fixable[family] {
					if out, err := ns.Command("nft", "insert rule "+family+" filter FORWARD "+r); err != nil {
						t.Fatalf("nft %s: %v: %s", r, err, out)
					}
				}
				if o, _ := realOutcome(ns, ipt, "filter", "FORWARD"); o.listExit == 0 {
					t.Fatalf("before the fix the table should trouble %s: %+v", v, o)
				}
				res, err := Fix(FixOptions{NetnsPath: ns.Path(), RollbackFile: filepath.Join(t.TempDir(), "rb.json")})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Rewritten) != len(fixable[family]) || len(res.LeftAlone) != 0 {
					t.Fatalf("rewrote %d of %d rules: %v; left alone %v", len(res.Rewritten), len(fixable[family]), res.Rewritten, res.LeftAlone)
				}
				o, save := realOutcome(ns, ipt, "filter", "FORWARD")
				if o != (outcome{}) {
					t.Fatalf("after the fix iptables %s: %+v\n%s", v, o, save)
				}
				for _, r := range res.Rewritten {
					spec := r[strings.Index(r, " -> ")+4:]
					if !strings.Contains(save, "-A FORWARD "+spec+"\n") {
						t.Errorf("iptables-save %s has no line -A FORWARD %s:\n%s", v, spec, save)
					}
				}
				before := forwardRules(t, ns, ipt)
				if out, err := ns.Command("sh", "-c", fmt.Sprintf("%s | %s", ipt.save, ipt.restore)); err != nil {
					t.Fatalf("%s | %s: %v: %s", ipt.save, ipt.restore, err, out)
				}
				after := forwardRules(t, ns, ipt)
				if len(before) != len(after) {
					t.Fatalf("round trip: %d rules before, %d after", len(before), len(after))
				}
				for i := range before {
					if b, a := meaning(before[i]), meaning(after[i]); !reflect.DeepEqual(b, a) {
						t.Errorf("round trip with %s changed rule %d:\n before %s\n after  %s", v, i, dumpExprs(before[i].Exprs), dumpExprs(after[i].Exprs))
					}
				}
				if _, again := realOutcome(ns, ipt, "filter", "FORWARD"); rulesOf(again) != rulesOf(save) {
					t.Errorf("iptables-save %s after the round trip:\n%s\nbefore:\n%s", v, again, save)
				}
				rep, err := Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Findings) != 0 {
					t.Errorf("findings after the fix and round trip: %+v", rep.Findings)
				}
			})
		}
	}
}

func forwardRules(t *testing.T, ns *netns.NS, ipt iptables) []nlrules.Rule {
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	return rs.ChainRules(ipt.nftFamily(), "filter", "FORWARD")
}

// meaning is a rule's expressions as the kernel runs them: without the
// counter iptables-restore adds to every rule, and with interface names
// compared without the trailing zero bytes nft pads them with (an exact
// name either way).
func meaning(r nlrules.Rule) []expr.Any {
	var out []expr.Any
	var prev expr.Any
	for _, e := range r.Decoded() {
		if _, ok := e.(*expr.Counter); ok {
			continue
		}
		if c, ok := e.(*expr.Cmp); ok {
			if m, ok := prev.(*expr.Meta); ok && (m.Key == expr.MetaKeyIIFNAME || m.Key == expr.MetaKeyOIFNAME) {
				n := len(c.Data)
				for n > 1 && c.Data[n-1] == 0 && c.Data[n-2] == 0 {
					n--
				}
				c = &expr.Cmp{Op: c.Op, Register: c.Register, Data: c.Data[:n]}
				e = c
			}
		}
		out = append(out, e)
		prev = e
	}
	return out
}

// rulesOf keeps the rule lines of an iptables-save dump.
func rulesOf(save string) string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func dumpExprs(ex []nlrules.RawExpr) string {
	var b bytes.Buffer
	for _, e := range ex {
		fmt.Fprintf(&b, "[%s %x] ", e.Name, e.Data)
	}
	return b.String()
}

// TestRoundTripMakesTheMisreadingReal: the doctor's claim that an
// iptables-save | iptables-restore round trip with 1.8.7 rewrites a misread
// rule into its misread_as, checked: after the round trip the kernel holds
// exactly the rule misread_as states (a hole: every tcp port accepted).
func TestRoundTripMakesTheMisreadingReal(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "nft", "nftables")
	ipt := realIptables(t, "1.8.7", "ip")
	ns := setupNS(t, ipt)
	if out, err := ns.Command("nft", "insert rule ip filter FORWARD tcp dport 80 accept"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rep, err := Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Severity != "misread" {
		t.Fatalf("findings: %+v", rep.Findings)
	}
	misread := rep.Findings[0].IPTables["1.8.7"].MisreadAs
	if misread != "-p tcp -j ACCEPT" {
		t.Fatalf("1.8.7 misread_as %q, want -p tcp -j ACCEPT", misread)
	}
	if out, err := ns.Command("sh", "-c", ipt.save+" | "+ipt.restore); err != nil {
		t.Fatalf("round trip: %v: %s", err, out)
	}
	// Now iptables 1.8.9 (which reads native ports) sees the new rule.
	first := forwardRules(t, ns, ipt)[0]
	want := realIptables(t, "1.8.9", "ip")
	if got := iptablesReading(t, ns, want); got != "-A FORWARD "+misread {
		t.Errorf("after the 1.8.7 round trip the kernel holds %q (%s), want -A FORWARD %s", got, dumpExprs(first.Exprs), misread)
	}
}

// iptablesReading is the first FORWARD rule as the release's iptables-save prints it.
func iptablesReading(t *testing.T, ns *netns.NS, ipt iptables) string {
	out, err := ns.Command(ipt.save)
	if err != nil {
		t.Fatalf("%s: %v: %s", ipt.save, err, out)
	}
	l, _ := saveLine(string(out), "FORWARD")
	return l
}
