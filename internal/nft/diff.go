package nft

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/nftext"
)

// Delta is what turns one table into another: the differences in words and
// the operations, grouped so they can be sent in a safe order within one
// transaction.
type Delta struct {
	// Differences describe every difference found, for logs, events and
	// verification reports.
	Differences []string
	// Rebuild asks for the whole table to be deleted and created again in the
	// same transaction: needed when an object must change in a way the
	// kernel cannot update in place (a set of another type, a base chain on
	// another hook).
	Rebuild bool

	AddSets      []*Set            // new sets, with their elements
	DelSets      []string          // sets to delete
	AddChains    []*Chain          // new chains, with their rules
	DelChains    []string          // chains to delete
	ReplaceRules []*Chain          // existing chains whose rules are replaced
	AddElems     map[string][]Elem // set name -> elements to add
	DelElems     map[string][]Elem // set name -> elements to delete
}

// Empty reports whether the two tables were equal.
func (d *Delta) Empty() bool { return len(d.Differences) == 0 }

// Elements returns the number of element additions and deletions, a measure
// of the transaction's size.
func (d *Delta) Elements() (added, deleted int) {
	for _, es := range d.AddElems {
		added += len(es)
	}
	for _, s := range d.AddSets {
		added += s.Len()
	}
	for _, es := range d.DelElems {
		deleted += len(es)
	}
	return added, deleted
}

// Diff returns what must change for have to become want. have may be nil
// when the kernel holds no table.
func Diff(want, have *Table) *Delta {
	d, _ := DiffLoaded(want, have, nil)
	return d
}

// diffTables is Diff; when load is set, have's sets hold no elements and
// load reads each one's when it is compared, so only one set's elements are
// held at a time.
func DiffLoaded(want, have *Table, load func(*Set) (*Set, error)) (*Delta, error) {
	d := &Delta{AddElems: map[string][]Elem{}, DelElems: map[string][]Elem{}}
	if have == nil {
		// Everything is missing: one line says so better than thousands.
		d.Notef("table inet %s: missing", TableName)
		d.AddSets = make([]*Set, 0, len(want.Sets))
		for _, name := range want.SetNames() {
			d.AddSets = append(d.AddSets, want.Sets[name])
		}
		for _, name := range want.ChainNames() {
			d.AddChains = append(d.AddChains, want.Chains[name])
		}
		return d, nil
	}
	// Objects shared with have (the renderer reuses what did not change)
	// are equal without a look inside; the rest is compared in name order,
	// so the differences read the same every time.
	for _, name := range changedNames(want.Sets, have.Sets) {
		w, h := want.Sets[name], have.Sets[name]
		switch {
		case w == nil:
			d.Notef("set %s: not wanted", name)
			d.DelSets = append(d.DelSets, name)
		case h == nil:
			d.Notef("set %s: missing", name)
			d.AddSets = append(d.AddSets, w)
		case h.Type != w.Type:
			d.Notef("set %s: has type %s, want %s", name, typeText(h.Type), typeText(w.Type))
			d.Rebuild = true
		default:
			if load != nil {
				var err error
				if h, err = load(h); err != nil {
					return nil, err
				}
			}
			d.DiffElems(w, h)
		}
	}
	var known map[string]string // built on first need: most diffs find no rule difference
	for _, name := range changedChainNames(want, have) {
		w, h := want.Chains[name], have.Chains[name]
		switch {
		case w == nil:
			d.Notef("chain %s: not wanted", name)
			d.DelChains = append(d.DelChains, name)
		case h == nil:
			d.Notef("chain %s: missing", name)
			d.AddChains = append(d.AddChains, w)
		case !sameHook(w.Hook, h.Hook):
			d.Notef("chain %s: hook is %s, want %s", name, hookText(h.Hook), hookText(w.Hook))
			d.Rebuild = true
		default:
			if !sameRules(w.Rules, h.Rules) {
				if known == nil {
					known = knownRuleTexts(want)
				}
				diffs := diffRules(name, w.Rules, h.Rules, known)
				d.Differences = append(d.Differences, diffs...)
				d.ReplaceRules = append(d.ReplaceRules, w)
			}
		}
	}
	return d, nil
}

// changedNames returns, sorted, the names of the objects that are not the
// same value in both maps: wanted ones first, then those only in have.
func changedNames[T any](want, have map[string]*T) []string {
	var names, gone []string
	for name, w := range want {
		if have[name] != w {
			names = append(names, name)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(names)
	slices.Sort(gone)
	return append(names, gone...)
}

// changedChainNames is changedNames in the order transactions and text use:
// base chains first.
func changedChainNames(want, have *Table) []string {
	names := changedNames(want.Chains, have.Chains)
	base := func(n string) bool {
		c := want.Chains[n]
		if c == nil {
			c = have.Chains[n]
		}
		return c.Hook != nil
	}
	wanted := func(n string) bool { return want.Chains[n] != nil }
	slices.SortStableFunc(names, func(a, b string) int {
		if wa, wb := wanted(a), wanted(b); wa != wb {
			if wa {
				return -1
			}
			return 1
		}
		if ba, bb := base(a), base(b); ba != bb {
			if ba {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

func (d *Delta) Notef(format string, args ...any) {
	d.Differences = append(d.Differences, fmt.Sprintf(format, args...))
}

// diffElems compares elements of two sets of the same type; both lists are
// in canonical order, so one merge pass finds the differences.
func (d *Delta) DiffElems(w, h *Set) {
	if w.Ranges != nil && h.Ranges != nil {
		d.diffRanges(w, h)
		return
	}
	we, he := w.Elements(), h.Elements()
	if len(we) == len(he) && (len(we) == 0 || &we[0] == &he[0]) {
		return
	}
	i, j := 0, 0
	for i < len(we) || j < len(he) {
		var c int
		switch {
		case i == len(we):
			c = 1
		case j == len(he):
			c = -1
		default:
			c = compareElemKey(we[i], he[j])
		}
		switch {
		case c < 0:
			d.missing(w, we[i])
			i++
		case c > 0:
			d.unexpected(w, h.Type, he[j])
			j++
		default:
			if !sameElemValue(we[i], he[j]) {
				d.Notef("set %s: element is %s, want %s", w.Name, ElemText(h.Type, he[j]), ElemText(w.Type, we[i]))
				d.DelElems[w.Name] = append(d.DelElems[w.Name], he[j])
				d.AddElems[w.Name] = append(d.AddElems[w.Name], we[i])
			}
			i++
			j++
		}
	}
}

func (d *Delta) missing(w *Set, e Elem) {
	d.Notef("set %s: missing element %s", w.Name, ElemText(w.Type, e))
	d.AddElems[w.Name] = append(d.AddElems[w.Name], e)
}

func (d *Delta) unexpected(w *Set, t SetType, e Elem) {
	d.Notef("set %s: unexpected element %s", w.Name, ElemText(t, e))
	d.DelElems[w.Name] = append(d.DelElems[w.Name], e)
}

// diffRanges is diffElems for two rendered address sets: the same merge on
// the plan's ranges, making elements only for the ranges that differ.
func (d *Delta) diffRanges(w, h *Set) {
	wr, hr := w.Ranges, h.Ranges
	if len(wr) == len(hr) && (len(wr) == 0 || &wr[0] == &hr[0]) {
		return
	}
	one := func(r addrset.Range) Elem { return rangeElems([]addrset.Range{r})[0] }
	i, j := 0, 0
	for i < len(wr) || j < len(hr) {
		switch {
		case j == len(hr) || i < len(wr) && compareRange(wr[i], hr[j]) < 0:
			d.missing(w, one(wr[i]))
			i++
		case i == len(wr) || compareRange(wr[i], hr[j]) > 0:
			d.unexpected(w, h.Type, one(hr[j]))
			j++
		default:
			i++
			j++
		}
	}
}

func compareRange(a, b addrset.Range) int {
	if c := a.From.Compare(b.From); c != 0 {
		return c
	}
	return a.To.Compare(b.To)
}

func compareElemKey(a, b Elem) int {
	if c := bytes.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return bytes.Compare(a.KeyEnd, b.KeyEnd)
}

func sameElemValue(a, b Elem) bool {
	if a.Comment != b.Comment || (a.Verdict == nil) != (b.Verdict == nil) {
		return false
	}
	return a.Verdict == nil || *a.Verdict == *b.Verdict
}

func sameHook(a, b *Hook) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func hookText(h *Hook) string {
	if h == nil {
		return "none (regular chain)"
	}
	typ := ""
	if h.Type != "" && h.Type != "filter" {
		typ = " type " + h.Type
	}
	return fmt.Sprintf("%s%s priority %s policy %s", h.Hook, typ, priorityText(h.Priority), h.Policy)
}

// sameRules reports whether two rule lists are equal. Rules we built carry
// their text, which our builders derive from the expressions, so two built
// rules compare by text; a rule read back compares by canonical form.
func sameRules(want, have []Rule) bool {
	if len(want) != len(have) {
		return false
	}
	for k := range want {
		w, h := want[k], have[k]
		if w.Comment != h.Comment {
			return false
		}
		if w.Text != "" && h.Text != "" {
			if w.Text != h.Text {
				return false
			}
			continue
		}
		if RuleKey(w) != RuleKey(h) {
			return false
		}
	}
	return true
}

// diffRules compares rule lists; any difference replaces the whole chain's
// rules, which stay few per chain by design.
func diffRules(chain string, want, have []Rule, known map[string]string) []string {
	text := func(r Rule) string {
		if r.Text == "" {
			if t, ok := known[RuleKey(r)]; ok {
				return t
			}
		}
		return ruleText(r)
	}
	var out []string
	n := max(len(want), len(have))
	for k := 0; k < n; k++ {
		switch {
		case k >= len(have):
			out = append(out, fmt.Sprintf("chain %s: rule %d missing: %s", chain, k+1, text(want[k])))
		case k >= len(want):
			out = append(out, fmt.Sprintf("chain %s: unexpected rule %d: %s", chain, k+1, text(have[k])))
		case RuleKey(want[k]) != RuleKey(have[k]):
			out = append(out, fmt.Sprintf("chain %s: rule %d is %s, want %s", chain, k+1, text(have[k]), text(want[k])))
		}
	}
	return out
}

// knownRuleTexts maps the canonical form of every rule we build to its
// text, so rules read back from the kernel can be named as nft would print
// them when they are ours (misplaced rather than foreign).
func knownRuleTexts(t *Table) map[string]string {
	m := map[string]string{}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			m[RuleKey(r)] = ruleText(r)
		}
	}
	return m
}

func ruleText(r Rule) string {
	t := r.Text
	if t == "" {
		t = exprsText(r.Exprs)
	}
	if r.Comment != "" {
		t += fmt.Sprintf(" comment %q", r.Comment)
	}
	return t
}

// RuleKey is a rule's canonical form: its expressions with the fields that
// only matter inside one transaction (set IDs) or change with traffic
// (counter values) cleared, and its comment.
func RuleKey(r Rule) string {
	var b strings.Builder
	for _, e := range r.Exprs {
		switch x := e.(type) {
		case *expr.Lookup:
			c := *x
			c.SetID = 0
			e = &c
		case *expr.Counter: // what it counted is no part of the rule
			e = &expr.Counter{}
		}
		fmt.Fprintf(&b, "%T%+v;", e, e)
	}
	b.WriteString("#" + r.Comment)
	return b.String()
}

// exprsText prints expressions we did not build (read back from the kernel)
// as nft would.
func exprsText(es []expr.Any) string {
	return nftext.Rule(es, nftext.Options{Family: unix.NFPROTO_INET})
}

// Result describes one transaction: what it changed and what it cost.
type Result struct {
	Delta    *Delta
	Messages int  // netlink messages in the transaction
	Bytes    int  // their size
	Rebuilt  bool // the table was replaced as a whole
	Duration time.Duration
}

// SameHook reports whether the chain h read back has w's hook, noting the
// difference in d when not.
func (d *Delta) SameHook(w, h *Chain) bool {
	if sameHook(w.Hook, h.Hook) {
		return true
	}
	d.Notef("chain %s: hook is %s, want %s", w.Name, hookText(h.Hook), hookText(w.Hook))
	return false
}

// DiffRules notes in d how the rules read back for chain w differ from w's.
func (d *Delta) DiffRules(want *Table, w *Chain, have []Rule) {
	if !sameRules(w.Rules, have) {
		d.Differences = append(d.Differences, diffRules(w.Name, w.Rules, have, knownRuleTexts(want))...)
	}
}

// String names the set type as nft prints it.
func (t SetType) String() string { return typeText(t) }
