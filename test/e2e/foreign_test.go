package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// seedComment is the comment of K3s's embedded kube-router jump rule, the
// one its `iptables -C` check looks for on every sync.
const seedComment = "kube-router netpol - TEMCG2JMHZYE7H7T"

// plantForeignRules puts the seed's situation into the node's namespace:
// kube-router's chain and jump rule written by iptables, and rules another
// program (NetBird, a hand-written script) wrote with native nftables
// expressions into the same ip filter FORWARD and INPUT chains. It then
// checks the seed's failure is real here: iptables 1.8.9's check exits 3.
func plantForeignRules(t *testing.T, ns *netns.NS) {
	t.Helper()
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	for _, cmd := range [][]string{
		{"iptables", "-N", "KUBE-ROUTER-FORWARD"},
		{"iptables", "-A", "FORWARD", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD"},
		{"nft", "insert", "rule", "ip", "filter", "FORWARD", "oifname", "wt0", "ct", "state", "established,related", "accept"},
		{"nft", "insert", "rule", "ip", "filter", "FORWARD", "ct", "state", "established,related", "accept"},
		{"iptables", "-A", "INPUT", "-j", "ACCEPT"},
		{"nft", "insert", "rule", "ip", "filter", "INPUT", "fib", "daddr", "type", "local", "counter", "accept"},
	} {
		if out, err := ns.Command(cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("plant foreign rule: %s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	checkSeedFailure(t, ns)
}

// checkSeedFailure runs the check K3s's kube-router runs and wants the
// seed's error: exit status 3, "cmp sreg undef".
func checkSeedFailure(t *testing.T, ns *netns.NS) {
	t.Helper()
	out, err := ns.Command("iptables", "-t", "filter", "-C", "FORWARD", "-m", "comment", "--comment", seedComment,
		"-j", "KUBE-ROUTER-FORWARD", "--wait")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), "cmp sreg undef") {
		t.Fatalf("iptables -C on the seed's rules: %v\n%s\nwant exit status 3 and \"cmp sreg undef\" as in the seed", err, out)
	}
}
