package iptmodel

import (
	"fmt"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nftext"
)

// Tables iptables-nft manages in the ip and ip6 families; rules elsewhere
// are never read by iptables.
var Tables = []string{"filter", "nat", "mangle", "raw", "security"}

// Manages reports whether iptables-nft reads this table.
func Manages(family byte, table string) bool {
	if family != unix.NFPROTO_IPV4 && family != unix.NFPROTO_IPV6 {
		return false
	}
	for _, t := range Tables {
		if t == table {
			return true
		}
	}
	return false
}

// RuleResult is what one version makes of one rule.
type RuleResult struct {
	// Unlisted are the expressions outside the whitelist: any one makes the
	// whole table "incompatible" for -S, -L and iptables-save.
	Unlisted []int
	// Errors are the decoder's messages in order (1.8.9 and later); any one
	// makes -C, -D <spec>, -S and iptables-save reaching the rule exit 3.
	Errors []DecodeError
	// Misread is set when the decoder skipped or misapplied an expression
	// without failing: the rule as iptables understands it (MisreadAs)
	// differs from what the kernel does.
	Misread   bool
	MisreadAs string
	// Unstatable, for a misread rule, says why no iptables command line
	// states the rule as read (MisreadAs is then empty): -C/-D with any
	// spec miss it.
	Unstatable string
	// IfaceMaskMiss: the version's -C and -D cannot find the rule by any
	// spec because its interface names were written by nft.
	IfaceMaskMiss bool
	// Ignored are the expressions skipped or misapplied.
	Ignored []int
}

// Broken reports whether the rule disturbs this version at all.
func (r RuleResult) Broken() bool {
	return len(r.Unlisted) > 0 || len(r.Errors) > 0 || r.Misread
}

// Rule evaluates one rule with one version's two checks.
func Rule(v Version, family byte, exprs []expr.Any) RuleResult {
	res := RuleResult{Unlisted: Unlisted(v, exprs)}
	d := decode(v, family, exprs)
	res.Errors = d.errs
	res.Ignored = d.ignored
	if len(d.ignored) > 0 && len(d.errs) == 0 {
		res.Misread = true
		if why := d.cmd.unstatable(); why != "" {
			res.Unstatable = why
		} else {
			res.MisreadAs = d.cmd.String()
		}
		res.IfaceMaskMiss = v.checkComparesIfaceMask() && (d.cmd.in != "" || d.cmd.out != "")
	}
	return res
}

// Unlisted returns the indexes of expressions outside the version's
// whitelist (nft_is_expr_compatible).
func Unlisted(v Version, exprs []expr.Any) []int {
	var out []int
	for i, e := range exprs {
		if !listed(v, e) {
			out = append(out, i)
		}
	}
	return out
}

func listed(v Version, e expr.Any) bool {
	switch e := e.(type) {
	case *expr.Match, *expr.Target, *expr.Payload, *expr.Meta, *expr.Cmp, *expr.Bitwise,
		*expr.Counter, *expr.Immediate, *expr.Verdict, *expr.Lookup, *expr.Range:
		return true
	case *expr.Limit:
		return e.Type == expr.LimitTypePkts && !e.Over
	case *expr.Log:
		return v.logWithGroupListed() && e.Key&(1<<unix.NFTA_LOG_GROUP) != 0
	case *nftext.Undecoded:
		switch e.Name {
		case "match", "target", "payload", "meta", "cmp", "bitwise", "counter", "immediate", "lookup", "range":
			return true
		}
	}
	return false
}

// Result is an exit status and the first line iptables prints, without its
// "Error: " or "iptables vX (nf_tables): " prefix.
type Result struct {
	Exit  int    `json:"exit"`
	Error string `json:"error,omitempty"`
}

// CheckReaching is what `iptables -C` (and `-D <spec>`) does when its walk
// of the chain reaches this rule: from 1.8.9 a decoder error ends it with
// exit 3; otherwise the walk goes on (exit 0 when the checked rule exists).
func CheckReaching(v Version, r RuleResult) Result {
	if v.fatalErrors() && len(r.Errors) > 0 {
		return Result{Exit: 3, Error: r.Errors[0].Msg}
	}
	return Result{Exit: 0}
}

// CheckNote warns about version quirks of -C that this rule triggers, and
// says when a misread rule cannot be stated.
func CheckNote(v Version, r RuleResult, decodedHasIface bool) string {
	var notes []string
	if r.Unstatable != "" {
		notes = append(notes, fmt.Sprintf("reads the rule as one with %s, which no iptables command line states: -C/-D with any spec miss it", r.Unstatable))
	}
	if r.IfaceMaskMiss {
		notes = append(notes, v.String()+"'s -C/-D compare interface masks and never match a rule whose interface name nft wrote, whatever the spec")
	}
	if v.checkIgnoresInterfaces() && decodedHasIface {
		notes = append(notes, "1.8.11's -C ignores -i/-o: a rule differing only in interfaces satisfies the check")
	}
	return strings.Join(notes, "; ")
}

// TableRule is one rule of a table in iptables' listing order.
type TableRule struct {
	Chain string
	Exprs []expr.Any
}

// TableResult is what -S/-L and iptables-save do with a whole table.
type TableResult struct {
	Incompatible bool `json:"incompatible"`
	// Tainted: a base chain that is not one of iptables' built-in ones
	// (name, hook, priority, type). -S and iptables-save still work but
	// print a warning line instead of listing it.
	Tainted bool   `json:"tainted,omitempty"`
	List    Result `json:"list"` // `iptables -t TABLE -S` (and -L)
	Save    Save   `json:"save"`
}

// Save is what iptables-save does with the table.
type Save struct {
	// Outcome is "ok", "table omitted" (exit 0, the table silently left
	// out of the dump) or "error" (exit 3).
	Outcome string `json:"outcome"`
	Exit    int    `json:"exit"`
	Error   string `json:"error,omitempty"`
	Line    string `json:"line,omitempty"` // the comment printed instead of the table
}

// BaseChain describes a base chain of an iptables table, for the check
// that its hook and priority are the built-in ones.
type BaseChain struct {
	Name     string
	Hook     uint32
	Priority int32
	Type     string
}

// TableOf evaluates the table-level checks: rules in listing order and the
// table's base chains.
func TableOf(v Version, family byte, table string, rules []TableRule, bases []BaseChain) TableResult {
	incompatible, tainted := false, false
	for _, b := range bases {
		if !builtinChain(table, b) {
			tainted = true
			if !v.taintWarns() {
				incompatible = true
			}
		}
	}
	var firstErr string
	for _, r := range rules {
		res := Rule(v, family, r.Exprs)
		if len(res.Unlisted) > 0 {
			incompatible = true
		}
		if firstErr == "" && v.fatalErrors() && len(res.Errors) > 0 {
			firstErr = res.Errors[0].Msg
		}
	}
	switch {
	case incompatible:
		return TableResult{
			Incompatible: true,
			Tainted:      tainted,
			List:         Result{Exit: 1, Error: fmt.Sprintf("table `%s' is incompatible, use 'nft' tool.", table)},
			Save:         Save{Outcome: "table omitted", Line: fmt.Sprintf("# Table `%s' is incompatible, use 'nft' tool.", table)},
		}
	case firstErr != "":
		return TableResult{
			Tainted: tainted,
			List:    Result{Exit: 3, Error: firstErr},
			Save:    Save{Outcome: "error", Exit: 3, Error: firstErr},
		}
	case tainted:
		line := fmt.Sprintf("# Table `%s' contains incompatible base-chains, use 'nft' tool to list them.", table)
		return TableResult{Tainted: true, Save: Save{Outcome: "ok", Line: line}}
	}
	return TableResult{Save: Save{Outcome: "ok"}}
}

type builtin struct {
	hook uint32
	prio int32
	typ  string
}

var builtins = map[string]map[string]builtin{
	"filter":   {"INPUT": {unix.NF_INET_LOCAL_IN, 0, "filter"}, "FORWARD": {unix.NF_INET_FORWARD, 0, "filter"}, "OUTPUT": {unix.NF_INET_LOCAL_OUT, 0, "filter"}},
	"nat":      {"PREROUTING": {unix.NF_INET_PRE_ROUTING, -100, "nat"}, "INPUT": {unix.NF_INET_LOCAL_IN, 100, "nat"}, "OUTPUT": {unix.NF_INET_LOCAL_OUT, -100, "nat"}, "POSTROUTING": {unix.NF_INET_POST_ROUTING, 100, "nat"}},
	"mangle":   {"PREROUTING": {unix.NF_INET_PRE_ROUTING, -150, "filter"}, "INPUT": {unix.NF_INET_LOCAL_IN, -150, "filter"}, "FORWARD": {unix.NF_INET_FORWARD, -150, "filter"}, "OUTPUT": {unix.NF_INET_LOCAL_OUT, -150, "route"}, "POSTROUTING": {unix.NF_INET_POST_ROUTING, -150, "filter"}},
	"raw":      {"PREROUTING": {unix.NF_INET_PRE_ROUTING, -300, "filter"}, "OUTPUT": {unix.NF_INET_LOCAL_OUT, -300, "filter"}},
	"security": {"INPUT": {unix.NF_INET_LOCAL_IN, 50, "filter"}, "FORWARD": {unix.NF_INET_FORWARD, 50, "filter"}, "OUTPUT": {unix.NF_INET_LOCAL_OUT, 50, "filter"}},
}

// builtinChain: iptables lists only base chains it would have created
// itself, same name, hook, priority and type; others "taint" the table.
func builtinChain(table string, b BaseChain) bool {
	want, ok := builtins[table][b.Name]
	return ok && want.hook == b.Hook && want.prio == b.Priority && (b.Type == "" || want.typ == b.Type)
}

// Command renders what version v's decoder makes of a rule, iptables-save
// style (without "-A CHAIN").
func Command(v Version, family byte, exprs []expr.Any) string {
	c := decode(v, family, exprs).cmd
	return c.String()
}

// Builtin reports whether a base chain is one iptables itself creates.
func Builtin(table string, b BaseChain) bool { return builtinChain(table, b) }
