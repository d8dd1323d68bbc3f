package nft

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemsPerMessage bounds one element message: the element list is a single
// netlink attribute, whose length field has 16 bits.
const elemsPerMessage = 256

var nftTable = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// encodeDelta builds the transaction for d. The order inside it matters even
// though the kernel commits it at once, because every message is checked
// against the state the previous ones leave: sets and chains are created
// before anything refers to them, and references (rules, verdict map
// elements) are removed before what they refer to.
func encodeDelta(d *Delta, want *Table, deleteTable bool) ([]netlink.Message, error) {
	e := newEncoder()
	c := e.conn
	if deleteTable {
		c.DelTable(nftTable)
	}
	c.AddTable(nftTable)

	sets := map[string]*nftables.Set{}
	setFor := func(name string, t SetType) *nftables.Set {
		if s := sets[name]; s != nil {
			return s
		}
		s := nftSet(name, t)
		sets[name] = s
		return s
	}
	typeOf := func(name string) SetType {
		if s := want.Sets[name]; s != nil {
			return s.Type
		}
		return 0
	}

	// Set and chain headers first: elements of verdict maps name chains,
	// rules name sets and chains.
	for _, s := range d.AddSets {
		if err := c.AddSet(setFor(s.Name, s.Type), nil); err != nil {
			return nil, fmt.Errorf("add set %s: %w", s.Name, err)
		}
	}
	for _, ch := range d.AddChains {
		c.AddChain(nftChain(ch))
	}
	// Deletions before additions, so an element whose value changes can be
	// deleted and added again under the same key.
	for _, name := range sortedKeys(d.DelElems) {
		ns := setFor(name, typeOf(name))
		for _, chunk := range chunks(kernelElems(typeOf(name), d.DelElems[name])) {
			if err := c.SetDeleteElements(ns, chunk); err != nil {
				return nil, fmt.Errorf("delete elements of set %s: %w", name, err)
			}
		}
	}
	for _, s := range d.AddSets {
		if err := addElems(c, setFor(s.Name, s.Type), s.Type, s.Elems); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(d.AddElems) {
		if err := addElems(c, setFor(name, typeOf(name)), typeOf(name), d.AddElems[name]); err != nil {
			return nil, err
		}
	}
	for _, ch := range d.ReplaceRules {
		nc := nftChain(ch)
		c.FlushChain(nc)
		addRules(c, nc, ch.Rules)
	}
	for _, ch := range d.AddChains {
		addRules(c, nftChain(ch), ch.Rules)
	}
	// Chains to delete are emptied first (their rules refer to sets), then
	// sets go (verdict maps refer to chains), then the chains.
	for _, name := range d.DelChains {
		c.FlushChain(&nftables.Chain{Name: name, Table: nftTable})
	}
	for _, name := range d.DelSets {
		c.DelSet(&nftables.Set{Name: name, Table: nftTable})
	}
	for _, name := range d.DelChains {
		c.DelChain(&nftables.Chain{Name: name, Table: nftTable})
	}
	return e.batch()
}

// encodeDeleteTable builds a transaction removing kube-fence's table.
func encodeDeleteTable() ([]netlink.Message, error) {
	e := newEncoder()
	e.conn.DelTable(nftTable)
	return e.batch()
}

func addElems(c *nftables.Conn, s *nftables.Set, t SetType, es []Elem) error {
	for _, chunk := range chunks(kernelElems(t, es)) {
		if err := c.SetAddElements(s, chunk); err != nil {
			return fmt.Errorf("add elements to set %s: %w", s.Name, err)
		}
	}
	return nil
}

func addRules(c *nftables.Conn, ch *nftables.Chain, rules []Rule) {
	for _, r := range rules {
		nr := &nftables.Rule{Table: nftTable, Chain: ch, Exprs: r.Exprs}
		if r.Comment != "" {
			nr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
		}
		c.AddRule(nr)
	}
}

func nftSet(name string, t SetType) *nftables.Set {
	s := &nftables.Set{Table: nftTable, Name: name}
	switch t {
	case Addr4:
		s.KeyType, s.Interval = nftables.TypeIPAddr, true
	case Addr6:
		s.KeyType, s.Interval = nftables.TypeIP6Addr, true
	case PodMap4:
		s.KeyType, s.IsMap, s.DataType = nftables.TypeIPAddr, true, nftables.TypeVerdict
	case PodMap6:
		s.KeyType, s.IsMap, s.DataType = nftables.TypeIP6Addr, true, nftables.TypeVerdict
	case PortMap:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		s.Concatenation, s.Interval, s.IsMap, s.DataType = true, true, true, nftables.TypeVerdict
	}
	return s
}

func nftChain(c *Chain) *nftables.Chain {
	nc := &nftables.Chain{Name: c.Name, Table: nftTable}
	if c.Hook != nil {
		nc.Type = nftables.ChainTypeFilter
		nc.Hooknum = hookNum(c.Hook.Hook)
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Hook.Priority))
		policy := nftables.ChainPolicyAccept
		if c.Hook.Policy == "drop" {
			policy = nftables.ChainPolicyDrop
		}
		nc.Policy = &policy
	}
	return nc
}

func hookNum(name string) *nftables.ChainHook {
	switch name {
	case "input":
		return nftables.ChainHookInput
	case "output":
		return nftables.ChainHookOutput
	case "prerouting":
		return nftables.ChainHookPrerouting
	case "postrouting":
		return nftables.ChainHookPostrouting
	}
	return nftables.ChainHookForward
}

// kernelElems turns canonical elements into what the kernel stores. Address
// ranges live in an rbtree as a start element and an end element one past the
// range; a range reaching the last address has no end element. Port ranges
// (a concatenation) carry their end as KEY_END.
func kernelElems(t SetType, es []Elem) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(es)*2)
	for _, e := range es {
		switch t {
		case Addr4, Addr6:
			out = append(out, nftables.SetElement{Key: e.Key})
			if next := addrFromKey(e.KeyEnd).Next(); next.IsValid() {
				out = append(out, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
			}
		case PortMap:
			out = append(out, nftables.SetElement{Key: e.Key, KeyEnd: e.KeyEnd, VerdictData: nftVerdict(e.Verdict)})
		default:
			out = append(out, nftables.SetElement{Key: e.Key, VerdictData: nftVerdict(e.Verdict), Comment: e.Comment})
		}
	}
	return out
}

func nftVerdict(v *Verdict) *expr.Verdict {
	if v == nil {
		return nil
	}
	return &expr.Verdict{Kind: v.Kind, Chain: v.Chain}
}

func chunks(es []nftables.SetElement) [][]nftables.SetElement {
	var out [][]nftables.SetElement
	for len(es) > elemsPerMessage {
		out = append(out, es[:elemsPerMessage])
		es = es[elemsPerMessage:]
	}
	if len(es) > 0 {
		out = append(out, es)
	}
	return out
}

// describeMessage names what a batch message does, for error reports.
func describeMessage(m netlink.Message) string {
	verb, kind, nameAttrs := messageKind(m.Header.Type)
	if verb == "" {
		return fmt.Sprintf("netlink message type %#x", uint16(m.Header.Type))
	}
	desc := verb + " " + kind
	if len(m.Data) > 4 {
		if ad, err := netlink.NewAttributeDecoder(m.Data[4:]); err == nil {
			for ad.Next() {
				for _, a := range nameAttrs {
					if ad.Type() == a.typ {
						desc += " " + a.label + ad.String()
					}
				}
			}
		}
	}
	return desc
}

type nameAttr struct {
	typ   uint16
	label string
}

func messageKind(t netlink.HeaderType) (verb, kind string, attrs []nameAttr) {
	if uint16(t)>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return "", "", nil
	}
	tableAttrs := []nameAttr{{unix.NFTA_TABLE_NAME, ""}}
	chainAttrs := []nameAttr{{unix.NFTA_CHAIN_NAME, ""}}
	ruleAttrs := []nameAttr{{unix.NFTA_RULE_CHAIN, "in chain "}}
	setAttrs := []nameAttr{{unix.NFTA_SET_NAME, ""}}
	elemAttrs := []nameAttr{{unix.NFTA_SET_ELEM_LIST_SET, "of set "}}
	switch uint16(t) & 0xff {
	case unix.NFT_MSG_NEWTABLE:
		return "create", "table", tableAttrs
	case unix.NFT_MSG_DELTABLE:
		return "delete", "table", tableAttrs
	case unix.NFT_MSG_NEWCHAIN:
		return "create", "chain", chainAttrs
	case unix.NFT_MSG_DELCHAIN:
		return "delete", "chain", chainAttrs
	case unix.NFT_MSG_NEWRULE:
		return "add", "rule", ruleAttrs
	case unix.NFT_MSG_DELRULE:
		return "delete", "rules", ruleAttrs
	case unix.NFT_MSG_NEWSET:
		return "create", "set", setAttrs
	case unix.NFT_MSG_DELSET:
		return "delete", "set", setAttrs
	case unix.NFT_MSG_NEWSETELEM:
		return "add", "elements", elemAttrs
	case unix.NFT_MSG_DELSETELEM:
		return "delete", "elements", elemAttrs
	}
	return "", "", nil
}

func sortedKeys(m map[string][]Elem) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
