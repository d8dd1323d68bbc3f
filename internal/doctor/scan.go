package doctor

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
	"github.com/kube-fence/kube-fence/internal/doctor/repair"
	"github.com/kube-fence/kube-fence/internal/doctor/toolchain"
	"github.com/kube-fence/kube-fence/internal/nftext"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// Options configure a scan.
type Options struct {
	// NetnsPath names the network namespace to scan (/proc/PID/ns/net,
	// /proc/PID/fd/N, /run/netns/NAME); empty means the current one.
	NetnsPath string
	// Toolchain is where binaries are looked for; SkipToolchain leaves
	// the binary inventory out (tests that only care about rules).
	Toolchain     toolchain.Options
	SkipToolchain bool
}

// Scan reads the ruleset of the namespace and builds the report.
func Scan(ctx context.Context, o Options) (*Report, error) {
	ns, err := openNamespace(o.NetnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.close()
	conn, err := nlrules.Dial(ns.fd())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rs, err := conn.Read()
	if err != nil {
		return nil, fmt.Errorf("read ruleset: %w", err)
	}
	rep := Analyze(rs, newSetReader(ns.fd()))
	if !o.SkipToolchain {
		if b := toolchain.FindBinaries(ctx, o.Toolchain); b != nil {
			rep.Binaries = b
		}
	}
	var ipsets []string
	var ipsetNote string
	// The legacy tables and ipsets are read in the scanned namespace; a
	// failure to enter it must not report the caller's own instead.
	if err := ns.do(func() error {
		rep.Legacy = toolchain.ReadLegacy()
		if rep.Legacy.Tables == nil {
			rep.Legacy.Tables = []string{}
		}
		ipsets, ipsetNote = toolchain.IPSets(ctx)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read legacy tables and ipsets: %w", err)
	}
	if ipsetNote != "" {
		rep.Notes = append(rep.Notes, ipsetNote)
	}
	for _, s := range ipsets {
		if toolchain.KubeRouterIPSet(s) {
			rep.Leftovers = append(rep.Leftovers, toolchain.Leftover{Kind: "ipset", Name: s, Where: "ipset"})
		}
	}
	rep.MixedBackends = len(rep.Legacy.Tables) > 0 && len(rep.Tables) > 0
	return rep, nil
}

// Analyze builds the report for a ruleset already read. sets renders
// anonymous sets inline and may be nil.
func Analyze(rs *nlrules.Ruleset, sets func(family byte, table string) func(string) ([]nftext.SetElement, bool)) *Report {
	rep := &Report{SchemaVersion: SchemaVersion, Findings: []Finding{}, Tables: []TableReport{}, Leftovers: []toolchain.Leftover{}, Binaries: []toolchain.Binary{}}
	for _, t := range rs.Tables {
		var chainNames []string
		for _, c := range rs.Chains {
			if c.Family == t.Family && c.Table == t.Name {
				chainNames = append(chainNames, c.Name)
				if toolchain.KubeRouterChain(c.Name) {
					rep.Leftovers = append(rep.Leftovers, toolchain.Leftover{Kind: "chain", Name: c.Name, Where: familyName(t.Family) + " " + t.Name})
				}
			}
		}
		if !iptmodel.Manages(t.Family, t.Name) {
			continue
		}
		var anon func(string) ([]nftext.SetElement, bool)
		if sets != nil {
			anon = sets(t.Family, t.Name)
		}
		analyzeTable(rep, rs, t, chainNames, anon)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if severityRank[a.Severity] != severityRank[b.Severity] {
			return severityRank[a.Severity] < severityRank[b.Severity]
		}
		if a.Family != b.Family || a.Table != b.Table || a.Chain != b.Chain {
			return a.Family+a.Table+a.Chain < b.Family+b.Table+b.Chain
		}
		return a.Position < b.Position
	})
	return rep
}

var severityRank = map[string]int{"fatal": 0, "incompatible": 1, "misread": 2}

func familyName(f byte) string {
	switch f {
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_IPV6:
		return "ip6"
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	}
	return strconv.Itoa(int(f))
}

func analyzeTable(rep *Report, rs *nlrules.Ruleset, t nlrules.Table, chainNames []string, anon func(string) ([]nftext.SetElement, bool)) {
	var trules []iptmodel.TableRule
	var bases []iptmodel.BaseChain
	type ruleInfo struct {
		r     nlrules.Rule
		exprs []expr.Any
		chain nlrules.Chain
	}
	var rules []ruleInfo
	for _, name := range chainNames {
		ch, _ := rs.Chain(t.Family, t.Name, name)
		if ch.Hook != nil {
			bases = append(bases, iptmodel.BaseChain{Name: ch.Name, Hook: ch.Hook.Num, Priority: ch.Hook.Priority, Type: ch.Type})
		}
		for _, r := range rs.ChainRules(t.Family, t.Name, name) {
			ex := r.Decoded()
			trules = append(trules, iptmodel.TableRule{Chain: name, Exprs: ex})
			rules = append(rules, ruleInfo{r, ex, ch})
		}
	}
	tr := TableReport{Family: familyName(t.Family), Table: t.Name, Versions: map[string]iptmodel.TableResult{}}
	for _, v := range iptmodel.Versions {
		tr.Versions[string(v)] = iptmodel.TableOf(v, t.Family, t.Name, trules, bases)
	}
	rep.Tables = append(rep.Tables, tr)
	for _, b := range bases {
		if tr.Versions[string(iptmodel.V189)].Tainted && !iptmodel.Builtin(t.Name, b) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: base chain %s (hook %d, priority %d) is not one of iptables' own: -S and iptables-save warn that the table \"contains incompatible base-chains\" and leave it out", familyName(t.Family), t.Name, b.Name, b.Hook, b.Priority))
		}
	}
	for _, ri := range rules {
		if f, ok := finding(t, ri.r, ri.exprs, ri.chain, tr, chainNames, anon); ok {
			rep.Findings = append(rep.Findings, f)
		}
	}
}

func finding(t nlrules.Table, r nlrules.Rule, exprs []expr.Any, ch nlrules.Chain, tr TableReport, chainNames []string, anon func(string) ([]nftext.SetElement, bool)) (Finding, bool) {
	f := Finding{
		Family: familyName(t.Family), Table: t.Name, Chain: r.Chain, Handle: r.Handle, Position: r.Index,
		IPTables: map[string]Outcome{}, AtFault: []FaultExpr{},
	}
	broken, fatal, unlisted := false, false, false
	faults := map[int]FaultExpr{}
	for _, v := range iptmodel.Versions {
		res := iptmodel.Rule(v, t.Family, exprs)
		tres := tr.Versions[string(v)]
		o := Outcome{
			Check:      iptmodel.CheckReaching(v, res),
			Save:       tres.Save.Outcome,
			SaveResult: tres.Save,
			List:       tres.List,
			MisreadAs:  res.MisreadAs,
			Basis:      v.Basis(),
		}
		o.Note = iptmodel.CheckNote(v, res, hasIface(exprs))
		if !res.Broken() {
			// This rule is fine for v; the table may still be broken by others.
			o.MisreadAs = ""
		}
		f.IPTables[string(v)] = o
		if res.Broken() {
			broken = true
		}
		if o.Check.Exit == 3 {
			fatal = true
		}
		for _, i := range res.Unlisted {
			unlisted = true
			faults[i] = FaultExpr{Index: i, Kind: r.Exprs[i].Name, Reason: "not in iptables-nft's expression whitelist"}
		}
		for _, e := range res.Errors {
			faults[e.Index] = FaultExpr{Index: e.Index, Kind: r.Exprs[e.Index].Name, Reason: e.Msg}
		}
		for _, i := range res.Ignored {
			if _, ok := faults[i]; !ok {
				faults[i] = FaultExpr{Index: i, Kind: r.Exprs[i].Name, Reason: "skipped or misapplied by the decoder"}
			}
		}
	}
	if !broken {
		return f, false
	}
	for _, fe := range faults {
		f.AtFault = append(f.AtFault, fe)
	}
	sort.Slice(f.AtFault, func(i, j int) bool { return f.AtFault[i].Index < f.AtFault[j].Index })
	switch {
	case fatal:
		f.Severity = "fatal"
	case unlisted:
		f.Severity = "incompatible"
	default:
		f.Severity = "misread"
	}
	comment := ruleComment(r, exprs)
	f.Rule = nftext.Rule(exprs, nftext.Options{Family: t.Family, AnonSet: anon})
	if c := nlrules.UserComment(r.UserData); c != "" {
		f.Rule += " comment " + strconv.Quote(c)
	}
	f.Owner = guessOwner(f.Rule, comment)
	f.Hits = hits(&f)
	f.Fix = advise(r, ch, f)
	return f, true
}

func hasIface(exprs []expr.Any) bool {
	for _, e := range exprs {
		if m, ok := e.(*expr.Meta); ok && !m.SourceRegister {
			switch m.Key {
			case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, expr.MetaKeyIIF, expr.MetaKeyOIF:
				return true
			}
		}
	}
	return false
}

func ruleComment(r nlrules.Rule, exprs []expr.Any) string {
	if c := nlrules.UserComment(r.UserData); c != "" {
		return c
	}
	for _, e := range exprs {
		if m, ok := e.(*expr.Match); ok && m.Name == "comment" {
			if c, ok := m.Info.(*xt.Comment); ok {
				return string(*c)
			}
		}
	}
	return ""
}

func advise(r nlrules.Rule, ch nlrules.Chain, f Finding) FixAdvice {
	a := FixAdvice{Options: []string{
		fmt.Sprintf("ask its owner (%s) to keep its rules in a table of its own (for example `inet %s`) instead of iptables' `%s %s`: each program owning its tables is the nftables rule of coexistence", f.Owner.Name, "<owner>", f.Family, f.Table),
		"ask its owner to write the rule through iptables-nft (xt matches) when it must live in an iptables table",
		fmt.Sprintf("if the rule is stale, delete just it: `nft delete rule %s %s %s handle %d` (never `nft flush ruleset`, which wipes every firewall on the node)", f.Family, f.Table, f.Chain, f.Handle),
	}}
	p, why := repair.Propose(r, ch)
	if p == nil {
		a.Why = why
		return a
	}
	a.Offered = true
	a.Rewrite = p.Describe
	a.Options = append([]string{"`kube-fence doctor --fix` rewrites it in place into the iptables-written form " + p.Describe + ", same position, same packets"}, a.Options...)
	return a
}

// newSetReader returns, per table, a lookup of anonymous set elements read
// with google/nftables (for inline `{ a, b }` rendering only).
func newSetReader(fd int) func(family byte, table string) func(string) ([]nftext.SetElement, bool) {
	return func(family byte, table string) func(string) ([]nftext.SetElement, bool) {
		var opts []nftables.ConnOption
		if fd >= 0 {
			opts = append(opts, nftables.WithNetNSFd(fd))
		}
		c, err := nftables.New(opts...)
		if err != nil {
			return nil
		}
		tbl := &nftables.Table{Name: table, Family: nftables.TableFamily(family)}
		sets, err := c.GetSets(tbl)
		if err != nil {
			return nil
		}
		return func(name string) ([]nftext.SetElement, bool) {
			for _, s := range sets {
				if s.Name != name {
					continue
				}
				els, err := c.GetSetElements(s)
				if err != nil {
					return nil, false
				}
				return toElements(s, els), true
			}
			return nil, false
		}
	}
}

func toElements(s *nftables.Set, els []nftables.SetElement) []nftext.SetElement {
	var out []nftext.SetElement
	for i := 0; i < len(els); i++ {
		e := els[i]
		if s.Interval {
			// Interval sets hold a start element and an end element (exclusive);
			// the kernel returns them in reverse order.
			if e.IntervalEnd {
				continue
			}
			out = append(out, nftext.SetElement{Key: e.Key})
			continue
		}
		se := nftext.SetElement{Key: e.Key, KeyEnd: e.KeyEnd}
		switch {
		case e.VerdictData != nil:
			se.Verdict = e.VerdictData
		case (s.DataType.Name == "verdict" || s.KeyType.Name == "verdict") && len(e.Val) > 0: // google/nftables v0.3.0 files a verdict map's data type under KeyType
			se.Verdict = verdictOf(e.Val)
		case len(e.Val) > 0:
			se.Data = e.Val
		}
		out = append(out, se)
	}
	return out
}

// verdictOf decodes a verdict map's data: NFTA_VERDICT_CODE and, for jump
// and goto, NFTA_VERDICT_CHAIN attributes.
func verdictOf(b []byte) *expr.Verdict {
	v := &expr.Verdict{}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return v
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind = expr.VerdictKind(int32(ad.Uint32()))
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	return v
}
