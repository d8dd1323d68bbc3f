package guard

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kube-fence/kube-fence/internal/doctor"
)

// Event reasons, documented in docs/doctor.md.
const (
	ReasonBreaks    = "ForeignRuleBreaksIptables"
	ReasonGone      = "ForeignRuleGone"
	ReasonRewritten = "ForeignRuleRewritten"
	ReasonFixFailed = "ForeignRuleFixFailed"
)

// Event is one Kubernetes Event the guard emits on its Node.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// key identifies a finding across scans: its place and its text (the
// handle changes when --fix replaces a rule).
func key(f doctor.Finding) string {
	return f.Family + " " + f.Table + " " + f.Chain + " " + f.Rule
}

// Diff returns the events for going from the findings of one scan to the
// next: a Warning per new finding, a Normal event per finding gone, and one
// per repair. Pure, so the rules are tested by a table of cases.
func Diff(before map[string]doctor.Finding, after []doctor.Finding, fixed doctor.FixResult) []Event {
	var out []Event
	now := map[string]bool{}
	for _, f := range after {
		k := key(f)
		now[k] = true
		if _, ok := before[k]; !ok {
			out = append(out, Event{Warning: true, Reason: ReasonBreaks, Message: Describe(f)})
		}
	}
	var gone []string
	for k := range before {
		if !now[k] {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		f := before[k]
		why := "it was removed or changed"
		if len(fixed.Rewritten) > 0 {
			why = "kube-fence doctor rewrote it or it was removed"
		}
		out = append(out, Event{Reason: ReasonGone, Message: fmt.Sprintf("the rule `%s` in %s %s %s is gone (%s); iptables-nft no longer trips over it", f.Rule, f.Family, f.Table, f.Chain, why)})
	}
	if len(fixed.Rewritten) > 0 {
		out = append(out, Event{Reason: ReasonRewritten, Message: fmt.Sprintf("kube-fence doctor --fix rewrote %d rule(s) into their iptables-written form, in place: %s; undo with kube-fence doctor --rollback %s",
			len(fixed.Rewritten), strings.Join(fixed.Rewritten, "; "), fixed.RollbackFile)})
	}
	return out
}

// Describe says in one sentence what a finding will do, for operators:
// "a rule in ip filter FORWARD will make iptables 1.8.9 -C exit 3: K3s's
// network policy controller will crash-loop".
func Describe(f doctor.Finding) string {
	where := fmt.Sprintf("%s %s %s", f.Family, f.Table, f.Chain)
	tail := fmt.Sprintf(" (rule `%s`, owner %s)", f.Rule, f.Owner.Name)
	for _, v := range []string{"1.8.9", "1.8.10", "1.8.11", "1.8.8", "1.8.7"} {
		o := f.IPTables[v]
		if o.Check.Exit != 3 {
			continue
		}
		s := fmt.Sprintf("a rule in %s will make iptables %s -C exit 3 (%q)", where, v, o.Check.Error)
		if v == "1.8.9" && f.Family == "ip" && f.Table == "filter" && (f.Chain == "FORWARD" || f.Chain == "INPUT" || f.Chain == "OUTPUT") {
			s += ": K3s's network policy controller will crash-loop"
		}
		return s + tail
	}
	if f.Severity == "incompatible" {
		return fmt.Sprintf("a rule in %s hides the %s table from iptables -S/-L and iptables-save, which leave it out of their dumps", where, f.Table) + tail
	}
	for _, v := range []string{"1.8.7", "1.8.8", "1.8.9", "1.8.10", "1.8.11"} {
		if m := f.IPTables[v].MisreadAs; m != "" {
			return fmt.Sprintf("iptables %s silently reads a rule in %s as `%s`", v, where, m) + tail
		}
	}
	return fmt.Sprintf("iptables-nft misreads a rule in %s", where) + tail
}
