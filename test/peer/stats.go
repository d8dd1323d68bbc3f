package peer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Median returns the median of xs, the mean of the middle two for an even
// count, and 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratio returns peer/ours, or 0 when ours is 0 (nothing to compare with).
func Ratio(peer, ours float64) float64 {
	if ours == 0 {
		return 0
	}
	return peer / ours
}

// The comments kube-router (v2, iptables) writes on the rules that matter
// here: a local pod's firewall chain runs through each policy selecting it,
// and the INPUT/FORWARD/OUTPUT dispatch jumps to a pod's chain by its
// address. Matching through the closing quote keeps pod-1 from matching
// pod-10.
func policyComment(name string) string { return `run through nw policy ` + name + `"` }
func podComment(namespace, name string) string {
	return `POD name:` + name + ` namespace: ` + namespace + `"`
}

// RouterHasPolicy reports whether iptables-save output holds kube-router's
// jump from a local pod's chain to policy name's chain: the policy is
// enforced for at least one pod. kube-router names chains by a hash that
// includes its sync version, so the comment is what stays stable.
func RouterHasPolicy(save, name string) bool { return strings.Contains(save, policyComment(name)) }

// RouterHasPod reports whether iptables-save output holds kube-router's
// jump to the firewall chain of pod namespace/name.
func RouterHasPod(save, namespace, name string) bool {
	return strings.Contains(save, podComment(namespace, name))
}

// RouterPods counts the distinct local pods kube-router has firewall
// chains for in iptables-save output.
func RouterPods(save string) int {
	seen := map[string]bool{}
	for line := range strings.Lines(save) {
		_, rest, ok := strings.Cut(line, "rule to jump traffic destined to POD name:")
		if !ok {
			continue
		}
		if pod, _, ok := strings.Cut(rest, `"`); ok {
			seen[pod] = true
		}
	}
	return len(seen)
}

// FenceFullSync returns how long the agent's first sync of its latest start
// took, from its log: the last run's `table updated` line with
// fullCompile=true, whose took= is the snapshot to the kernel holding the
// table (compile, render, diff, apply), the span kube-router's sync-time
// metric covers too. The agent's sync_duration_seconds histogram adds the
// read back after the transaction, and cannot tell the first sync from the
// small ones that follow at once. The framework starts each run's log with
// a line beginning "=== ".
func FenceFullSync(log string) (time.Duration, error) {
	if i := strings.LastIndex(log, "\n=== "); i >= 0 {
		log = log[i+1:]
	}
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `msg="table updated"`) || !strings.Contains(line, "fullCompile=true") {
			continue
		}
		_, took, ok := strings.Cut(line, " took=")
		if !ok {
			return 0, fmt.Errorf("agent log line has no took=: %q", line)
		}
		took, _, _ = strings.Cut(strings.TrimSpace(took), " ")
		return time.ParseDuration(took)
	}
	return 0, errors.New("the agent's log has no full sync (table updated with fullCompile=true) since its last start")
}

// HasFlag reports whether a program's --help output, in pflag's layout
// ("  -v, --v string  ..." or "      --health-addr string  ..."), lists
// --name. kube-router's flags differ between versions (v2.6 has no
// --health-addr), and an unknown flag stops it at start.
func HasFlag(help, name string) bool {
	for line := range strings.Lines(help) {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") && strings.HasSuffix(f[0], ",") {
			f = f[1:] // the shorthand
		}
		if len(f) > 0 && f[0] == "--"+name {
			return true
		}
	}
	return false
}
