package toolchain

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Legacy describes xtables (legacy) tables in the namespace.
type Legacy struct {
	// Checked says how: the doctor reads /proc/net/ip_tables_names and
	// ip6_tables_names in the scanned namespace and runs no binary.
	Checked string   `json:"checked"`
	Tables  []string `json:"tables"` // e.g. "ip filter", "ip6 nat"
}

// ReadLegacy reads the legacy table names visible to the calling thread
// (run it inside the scanned namespace).
func ReadLegacy() Legacy {
	l := Legacy{Checked: "read /proc/net/ip_tables_names and /proc/net/ip6_tables_names in the scanned namespace"}
	for fam, f := range map[string]string{"ip": "/proc/thread-self/net/ip_tables_names", "ip6": "/proc/thread-self/net/ip6_tables_names"} {
		file, err := os.Open(f)
		if err != nil {
			continue // module not loaded: no legacy tables
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				l.Tables = append(l.Tables, fam+" "+t)
			}
		}
		file.Close()
	}
	return l
}

// Leftover is something kube-router left behind.
type Leftover struct {
	Kind  string `json:"kind"` // "chain" or "ipset"
	Name  string `json:"name"`
	Where string `json:"where"`
}

// KubeRouterChain reports whether a chain name is one kube-router's
// NetworkPolicy controller creates.
func KubeRouterChain(name string) bool {
	for _, p := range []string{"KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// KubeRouterIPSet reports whether an ipset name looks like kube-router's.
// kube-router names its IPv6 sets like its IPv4 ones with an "inet6:"
// prefix (KUBE-SRC-... and inet6:KUBE-SRC-...).
func KubeRouterIPSet(name string) bool {
	name = strings.TrimPrefix(name, "inet6:")
	for _, p := range []string{"KUBE-SRC-", "KUBE-DST-", "KUBE-NWPLCY-", "kube-router-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// IPSets lists ipset names with the ipset binary, run inside the scanned
// namespace by the caller. It says so when ipset is not installed.
func IPSets(ctx context.Context) ([]string, string) {
	p, err := exec.LookPath("ipset")
	if err != nil {
		return nil, "ipset is not installed: kube-router's ipsets were not checked"
	}
	out, err := exec.CommandContext(ctx, p, "list", "-n").CombinedOutput()
	if err != nil {
		return nil, fmt.Sprintf("ipset list -n failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	return names, ""
}
