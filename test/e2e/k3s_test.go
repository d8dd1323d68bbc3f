package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// cleanupScript is docs/k3s.md's tool for what K3s's embedded controller
// leaves behind.
const cleanupScript = "deploy/k3s/remove-kube-router-leftovers.sh"

// TestK3sLeftoverCleanup runs the migration step of docs/k3s.md in a node's
// namespace holding what K3s's embedded kube-router leaves after
// --disable-network-policy (its jump and accept-mark rules in INPUT, FORWARD
// and OUTPUT, its chains in ip and ip6 filter, its ipsets), next to rules of
// others that must survive: the seed's native nftables rules in the same
// chains (which make iptables -D and iptables-save useless there),
// kube-proxy's chain, a mark rule without kube-router's comment, Calico's
// ipset. `kube-fence doctor` lists the leftovers before and none after.
func TestK3sLeftoverCleanup(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "ipset", "ipset")
	ns := testenv.NetNS(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := ns.Command(args[0], args[1:]...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, s := range []string{"KUBE-SRC-AAAA", "KUBE-DST-BBBB"} {
		run("ipset", "create", s, "hash:ip", "timeout", "0")
	}
	run("ipset", "create", "inet6:KUBE-SRC-CCCC", "hash:ip", "family", "inet6", "timeout", "0")
	run("ipset", "create", "cali40all-hosts", "hash:ip")
	for _, c := range []string{"KUBE-ROUTER-INPUT", "KUBE-ROUTER-FORWARD", "KUBE-ROUTER-OUTPUT", "KUBE-POD-FW-ABCDEF", "KUBE-NWPLCY-XYZ", "KUBE-NWPLCY-DEFAULT", "KUBE-FORWARD"} {
		run("iptables", "-N", c)
	}
	const accept = "KUBE-ROUTER rule to explicitly ACCEPT traffic that comply to network policies"
	for _, rule := range [][]string{
		{"iptables", "-I", "INPUT", "1", "-m", "comment", "--comment", "kube-router netpol - 4IA2OSFRMVNDXBVV", "-j", "KUBE-ROUTER-INPUT"},
		{"iptables", "-I", "FORWARD", "1", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD"},
		{"iptables", "-I", "OUTPUT", "1", "-m", "comment", "--comment", "kube-router netpol - VEAAIY32XVBHCSCY", "-j", "KUBE-ROUTER-OUTPUT"},
		{"iptables", "-A", "INPUT", "-m", "comment", "--comment", accept, "-m", "mark", "--mark", "0x20000/0x20000", "-j", "ACCEPT"},
		{"iptables", "-A", "FORWARD", "-m", "comment", "--comment", accept, "-m", "mark", "--mark", "0x20000/0x20000", "-j", "ACCEPT"},
		{"iptables", "-A", "KUBE-ROUTER-FORWARD", "-d", "10.42.0.10", "-j", "KUBE-POD-FW-ABCDEF"},
		{"iptables", "-A", "KUBE-POD-FW-ABCDEF", "-j", "KUBE-NWPLCY-XYZ"},
		{"iptables", "-A", "KUBE-NWPLCY-XYZ", "-m", "set", "--match-set", "KUBE-SRC-AAAA", "src", "-m", "set", "--match-set", "KUBE-DST-BBBB", "dst", "-j", "ACCEPT"},
		{"iptables", "-A", "FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"},
		{"iptables", "-A", "FORWARD", "-m", "mark", "--mark", "0x20000/0x20000", "-j", "ACCEPT"},
		{"ip6tables", "-N", "KUBE-ROUTER-FORWARD"},
		{"ip6tables", "-I", "FORWARD", "1", "-m", "comment", "--comment", seedComment, "-j", "KUBE-ROUTER-FORWARD"},
		{"ip6tables", "-A", "KUBE-ROUTER-FORWARD", "-m", "set", "--match-set", "inet6:KUBE-SRC-CCCC", "src", "-j", "ACCEPT"},
		{"nft", "insert", "rule", "ip", "filter", "FORWARD", "ct", "state", "established,related", "accept"},
		{"nft", "insert", "rule", "ip", "filter", "INPUT", "fib", "daddr", "type", "local", "counter", "accept"},
	} {
		run(rule...)
	}
	checkSeedFailure(t, ns) // iptables is as broken here as on the seed's node

	before := leftovers(t, ns)
	want := []string{"chain KUBE-NWPLCY-DEFAULT", "chain KUBE-NWPLCY-XYZ", "chain KUBE-POD-FW-ABCDEF", "chain KUBE-ROUTER-FORWARD",
		"chain KUBE-ROUTER-INPUT", "chain KUBE-ROUTER-OUTPUT", "ipset KUBE-DST-BBBB", "ipset KUBE-SRC-AAAA", "ipset inet6:KUBE-SRC-CCCC"}
	for _, w := range want {
		if !slices.Contains(before, w) {
			t.Errorf("kube-fence doctor before the cleanup lists %v, missing %s", before, w)
		}
	}

	script := framework.RepoPath(t, cleanupScript)
	dry := run(script, "--dry-run")
	if after := leftovers(t, ns); !slices.Equal(after, before) {
		t.Fatalf("--dry-run changed something: leftovers %v, were %v", after, before)
	}
	out := run(script)
	if out != dry {
		t.Errorf("the run did not do what --dry-run announced:\n%s\nvs\n%s", out, dry)
	}
	t.Logf("%s:\n%s", cleanupScript, out)
	if after := leftovers(t, ns); len(after) != 0 {
		t.Errorf("kube-fence doctor after the cleanup still lists %v", after)
	}

	forward := run("nft", "list", "chain", "ip", "filter", "FORWARD")
	for _, keep := range []string{"ct state established,related accept", "jump KUBE-FORWARD", "meta mark & 0x00020000 == 0x00020000"} {
		if !strings.Contains(forward, keep) {
			t.Errorf("the cleanup removed another program's rule %q from FORWARD:\n%s", keep, forward)
		}
	}
	if strings.Count(forward, "0x00020000 == 0x00020000") != 1 {
		t.Errorf("want exactly the mark rule without kube-router's comment left in FORWARD:\n%s", forward)
	}
	if input := run("nft", "list", "chain", "ip", "filter", "INPUT"); !strings.Contains(input, "fib daddr type local") || strings.Contains(input, "0x00020000") {
		t.Errorf("INPUT after the cleanup:\n%s\nwant the foreign fib rule kept and kube-router's accept-mark rule gone", input)
	}
	if sets := run("ipset", "list", "-n"); strings.TrimSpace(sets) != "cali40all-hosts" {
		t.Errorf("ipsets after the cleanup: %q, want Calico's only", sets)
	}
	if again := run(script); !strings.Contains(again, "no kube-router rules or chains") || !strings.Contains(again, "no kube-router ipsets") {
		t.Errorf("a second run: %s; want nothing left to do", again)
	}
}

// leftovers runs `kube-fence doctor -o json` in ns and returns its
// kube-router leftovers as "kind name", sorted.
func leftovers(t *testing.T, ns *netns.NS) []string {
	t.Helper()
	out, _ := ns.Command(framework.KubeFenceBinary(t), "doctor", "-o", "json") // exit 1 means findings
	var rep struct {
		Leftovers []struct{ Kind, Name string } `json:"kube_router_leftovers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("kube-fence doctor -o json: %v\n%s", err, out)
	}
	var got []string
	for _, l := range rep.Leftovers {
		got = append(got, l.Kind+" "+l.Name)
	}
	slices.Sort(got)
	return got
}
