package repair

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nlrules"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

const sentinelComment = "kube-router netpol - TEMCG2JMHZYE7H7T"

var sentinel = []string{"-m", "comment", "--comment", sentinelComment, "-j", "ACCEPT"}

func run(t *testing.T, ns *netns.NS, name string, args ...string) string {
	t.Helper()
	out, err := ns.Command(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func exitStatus(ns *netns.NS, name string, args ...string) (int, string) {
	out, err := ns.Command(name, args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, string(out)
}

func readRules(t *testing.T, ns *netns.NS) (*nlrules.Conn, *nlrules.Ruleset) {
	t.Helper()
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rs, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	return c, rs
}

// rewrites pairs native rules with the iptables command that writes their
// exact equivalent.
var rewriteCases = []struct {
	chain, nft string
	ipt        []string
}{
	{"FORWARD", "ct state established,related accept", []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
	{"FORWARD", "ct state new accept", []string{"-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"}},
	{"FORWARD", "ct state != established accept", []string{"-m", "conntrack", "!", "--ctstate", "ESTABLISHED", "-j", "ACCEPT"}},
	{"FORWARD", "ct state invalid drop", []string{"-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"}},
	{"FORWARD", `oifname "wt0" ct state established,related accept`, []string{"-o", "wt0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
	{"FORWARD", "ct mark 0x10 accept", []string{"-m", "connmark", "--mark", "0x10", "-j", "ACCEPT"}},
	{"FORWARD", "ct mark != 0x10 accept", []string{"-m", "connmark", "!", "--mark", "0x10", "-j", "ACCEPT"}},
	{"FORWARD", "ct mark and 0xff == 0x10 accept", []string{"-m", "connmark", "--mark", "0x10/0xff", "-j", "ACCEPT"}},
	{"FORWARD", "ip dscp 46 accept", []string{"-m", "dscp", "--dscp", "46", "-j", "ACCEPT"}},
	{"FORWARD", "ip dscp != cs1 accept", []string{"-m", "dscp", "!", "--dscp", "8", "-j", "ACCEPT"}},
	{"FORWARD", "fib daddr type local accept", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", "ACCEPT"}},
	{"FORWARD", "fib daddr type != local drop", []string{"-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "DROP"}},
	{"INPUT", "fib saddr type broadcast drop", []string{"-m", "addrtype", "--src-type", "BROADCAST", "-j", "DROP"}},
}

// TestRewritesAreWhatIptablesWrites compares each rewrite, byte for byte,
// with the match expression the real iptables writes for the same rule.
func TestRewritesAreWhatIptablesWrites(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	for _, tc := range rewriteCases {
		ns, err := netns.New()
		if err != nil {
			t.Fatal(err)
		}
		run(t, ns, "iptables", "-A", tc.chain, "-j", "ACCEPT")
		run(t, ns, "nft", "flush table ip filter; insert rule ip filter "+tc.chain+" "+tc.nft)
		_, rs := readRules(t, ns)
		rules := rs.ChainRules(unix.NFPROTO_IPV4, "filter", tc.chain)
		ch, _ := rs.Chain(unix.NFPROTO_IPV4, "filter", tc.chain)
		p, why := Propose(rules[0], ch)
		if p == nil {
			t.Errorf("%s: no rewrite: %s", tc.nft, why)
			ns.Close()
			continue
		}
		run(t, ns, "nft", "flush table ip filter")
		run(t, ns, "iptables", append([]string{"-A", tc.chain}, tc.ipt...)...)
		_, rs = readRules(t, ns)
		want := rs.ChainRules(unix.NFPROTO_IPV4, "filter", tc.chain)[0]
		if got, exp := matchExpr(p.New), matchExpr(want.Exprs); got == nil || exp == nil || !bytes.Equal(got.Data, exp.Data) {
			t.Errorf("%s: rewrite match\n got  %x\n want %x (iptables %s)", tc.nft, got, exp, strings.Join(tc.ipt, " "))
		}
		ns.Close()
	}
}

func matchExpr(ex []nlrules.RawExpr) *nlrules.RawExpr {
	for _, e := range ex {
		if e.Name == "match" {
			e := e
			return &e
		}
	}
	return nil
}

// TestFixAndRollback programs the seed's situation, repairs it, checks the
// real iptables now works, then restores the original rules byte for byte.
func TestFixAndRollback(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	run(t, ns, "iptables", append([]string{"-A", "FORWARD"}, sentinel...)...)
	run(t, ns, "iptables", "-A", "INPUT", "-j", "ACCEPT")
	for i := len(rewriteCases) - 1; i >= 0; i-- {
		run(t, ns, "nft", "insert rule ip filter "+rewriteCases[i].chain+" "+rewriteCases[i].nft)
	}
	check := append([]string{"-t", "filter", "-C", "FORWARD"}, sentinel...)
	if code, out := exitStatus(ns, "iptables", check...); code != 3 || !strings.Contains(out, "cmp sreg undef") {
		t.Fatalf("before the fix iptables -C exits %d (%s), want 3 cmp sreg undef", code, out)
	}
	c, rs := readRules(t, ns)
	before := rs.Rules
	props, skipped := Plan(rs)
	if len(props) != len(rewriteCases) || len(skipped) != 0 {
		t.Fatalf("plan: %d proposals, skipped %v; want %d and none", len(props), skipped, len(rewriteCases))
	}
	rb := filepath.Join(t.TempDir(), "rollback.json")
	if err := Fix(c, rs, props, rb, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rb); err != nil {
		t.Fatalf("rollback file: %v", err)
	}
	for _, args := range [][]string{check, {"-t", "filter", "-S"}} {
		if code, out := exitStatus(ns, "iptables", args...); code != 0 {
			t.Errorf("after the fix iptables %v exits %d: %s", args, code, out)
		}
	}
	if code, out := exitStatus(ns, "iptables-save"); code != 0 || strings.Contains(out, "incompatible") {
		t.Errorf("after the fix iptables-save exits %d: %s", code, out)
	}
	_, after := readRules(t, ns)
	if len(after.Rules) != len(before) {
		t.Fatalf("rule count changed: %d -> %d", len(before), len(after.Rules))
	}
	for i, r := range after.Rules {
		if r.Chain != before[i].Chain || r.Index != before[i].Index {
			t.Errorf("rule %d moved: %s/%d -> %s/%d", i, before[i].Chain, before[i].Index, r.Chain, r.Index)
		}
	}
	rf, err := ReadRollback(rb)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Rollback(c, rf)
	if err != nil || n != len(rewriteCases) {
		t.Fatalf("rollback restored %d, %v", n, err)
	}
	_, restored := readRules(t, ns)
	for i, r := range restored.Rules {
		if r.Chain != before[i].Chain || r.Index != before[i].Index || !nlrules.SameExprs(r.Exprs, before[i].Exprs) || !bytes.Equal(r.UserData, before[i].UserData) {
			t.Errorf("rule %d not restored exactly: %+v, want %+v", i, r, before[i])
		}
	}
	if code, _ := exitStatus(ns, "iptables", check...); code != 3 {
		t.Errorf("after rollback iptables -C exits %d, want 3 again", code)
	}
}

// TestFixRefusesAChangedRuleset: a change between plan and commit makes
// the kernel refuse the whole transaction.
func TestFixRefusesAChangedRuleset(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	run(t, ns, "iptables", append([]string{"-A", "FORWARD"}, sentinel...)...)
	run(t, ns, "nft", "insert rule ip filter FORWARD ct state established,related accept")
	c, rs := readRules(t, ns)
	props, _ := Plan(rs)
	run(t, ns, "nft", "add rule ip filter FORWARD counter")
	err = Fix(c, rs, props, filepath.Join(t.TempDir(), "rb.json"), "")
	if !errors.Is(err, nlrules.ErrGenerationChanged) {
		t.Fatalf("Fix after a concurrent change: %v, want ErrGenerationChanged", err)
	}
	_, now := readRules(t, ns)
	if now.Rules[0].Exprs[0].Name != "ct" {
		t.Errorf("first rule changed although the transaction was refused: %+v", now.Rules[0].Exprs)
	}
}

// TestUnfixableLeftAlone: rules with no exact equivalent get no proposal.
func TestUnfixableLeftAlone(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	run(t, ns, "iptables", "-A", "OUTPUT", "-j", "ACCEPT")
	for _, r := range []string{"meta skuid 0 accept", "rt mtu 1400 accept", "ct state { established, related } accept", "quota 10 mbytes accept", "fib daddr . mark type local accept"} {
		run(t, ns, "nft", "insert rule ip filter OUTPUT "+r)
	}
	_, rs := readRules(t, ns)
	props, skipped := Plan(rs)
	if len(props) != 0 || len(skipped) != 5 {
		t.Errorf("got %d proposals and skipped %v, want none and 5 explained", len(props), skipped)
	}
}
