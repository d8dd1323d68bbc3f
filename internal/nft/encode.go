package nft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
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
func EncodeDelta(d *Delta, want *Table, deleteTable bool) ([]netlink.Message, error) {
	typeOf := func(name string) SetType {
		if s := want.Sets[name]; s != nil {
			return s.Type
		}
		return 0
	}

	// Set and chain headers first: elements of verdict maps name chains,
	// rules name sets and chains.
	head := newEncoder()
	c := head.conn
	if deleteTable {
		c.DelTable(nftTable)
	}
	c.AddTable(nftTable)
	for _, s := range d.AddSets {
		if err := c.AddSet(nftSet(s.Name, s.Type), nil); err != nil {
			return nil, fmt.Errorf("add set %s: %w", s.Name, err)
		}
	}
	chains := map[string]*nftables.Chain{}
	for _, ch := range append(slices.Clone(d.AddChains), d.ReplaceRules...) {
		nc, err := nftChain(ch)
		if err != nil {
			return nil, err
		}
		chains[ch.Name] = nc
	}
	for _, ch := range d.AddChains {
		c.AddChain(chains[ch.Name])
	}
	headMsgs, err := head.batch()
	if err != nil {
		return nil, err
	}

	// Elements, encoded by us: deletions before additions, so an element
	// whose value changes can be deleted and added again under the same
	// key.
	var elems []netlink.Message
	for _, name := range sortedKeys(d.DelElems) {
		elems = append(elems, elemMessages(name, typeOf(name), d.DelElems[name], true)...)
	}
	for _, s := range d.AddSets {
		elems = append(elems, elemMessages(s.Name, s.Type, s.Elements(), false)...)
	}
	for _, name := range sortedKeys(d.AddElems) {
		elems = append(elems, elemMessages(name, typeOf(name), d.AddElems[name], false)...)
	}

	// Rules, then what goes: chains to delete are emptied first (their
	// rules refer to sets), then sets go (verdict maps refer to chains),
	// then the chains.
	tail := newEncoder()
	c = tail.conn
	for _, ch := range d.ReplaceRules {
		nc := chains[ch.Name]
		c.FlushChain(nc)
		addRules(c, nc, ch.Rules)
	}
	for _, ch := range d.AddChains {
		addRules(c, chains[ch.Name], ch.Rules)
	}
	for _, name := range d.DelChains {
		c.FlushChain(&nftables.Chain{Name: name, Table: nftTable})
	}
	for _, name := range d.DelSets {
		c.DelSet(&nftables.Set{Name: name, Table: nftTable})
	}
	for _, name := range d.DelChains {
		c.DelChain(&nftables.Chain{Name: name, Table: nftTable})
	}
	tailMsgs, err := tail.batch()
	if err != nil {
		return nil, err
	}
	return joinBatch(headMsgs, elems, tailMsgs)
}

// joinBatch puts the messages of several parts into one batch: the begin
// message of the first part, every part's own messages, one end message.
func joinBatch(first []netlink.Message, rest ...[]netlink.Message) ([]netlink.Message, error) {
	if len(first) < 2 || first[0].Header.Type != msgBatchBegin || first[len(first)-1].Header.Type != MsgBatchEnd {
		return nil, errors.New("encode nftables batch: no batch begin and end messages")
	}
	out := slices.Clone(first[:len(first)-1])
	for _, part := range rest {
		for _, m := range part {
			if m.Header.Type != msgBatchBegin && m.Header.Type != MsgBatchEnd {
				out = append(out, m)
			}
		}
	}
	return append(out, first[len(first)-1]), nil
}

// encodeDeleteTable builds a transaction removing kube-fence's table.
func EncodeDeleteTable() ([]netlink.Message, error) {
	e := newEncoder()
	e.conn.DelTable(nftTable)
	return e.batch()
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
	case Host4:
		s.KeyType = nftables.TypeIPAddr
	case Host6:
		s.KeyType = nftables.TypeIP6Addr
	case PodMap4:
		s.KeyType, s.IsMap, s.DataType = nftables.TypeIPAddr, true, nftables.TypeVerdict
	case PodMap6:
		s.KeyType, s.IsMap, s.DataType = nftables.TypeIP6Addr, true, nftables.TypeVerdict
	case PortMap:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		s.Concatenation, s.Interval, s.IsMap, s.DataType = true, true, true, nftables.TypeVerdict
	case PortSet:
		s.KeyType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		s.Concatenation, s.Interval = true, true
	}
	return s
}

// nftChain builds a chain's header. A hook that is not one of the five, or a
// chain type other than filter, is an error: the table must never get a
// base chain somewhere else than asked.
func nftChain(c *Chain) (*nftables.Chain, error) {
	nc := &nftables.Chain{Name: c.Name, Table: nftTable}
	if c.Hook != nil {
		if !c.Hook.Hook.Known() {
			return nil, fmt.Errorf("chain %s: unknown hook %s", c.Name, c.Hook.Hook)
		}
		if c.Hook.Type != "" && c.Hook.Type != "filter" {
			return nil, fmt.Errorf("chain %s: chain type %q, kube-fence creates only filter chains", c.Name, c.Hook.Type)
		}
		nc.Type = nftables.ChainTypeFilter
		hook := nftables.ChainHook(c.Hook.Hook)
		nc.Hooknum = &hook
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Hook.Priority))
		policy := nftables.ChainPolicyAccept
		if c.Hook.Policy == "drop" {
			policy = nftables.ChainPolicyDrop
		}
		nc.Policy = &policy
	}
	return nc, nil
}

// DescribeMessage names what a batch message does, for error reports.
func DescribeMessage(m netlink.Message) string {
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

// encoder collects the messages google/nftables would send.
type encoder struct {
	conn *nftables.Conn
	msgs []netlink.Message
}

func newEncoder() *encoder {
	e := &encoder{}
	e.conn, _ = nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		e.msgs = append(e.msgs, req...)
		return nil, nil // no reply; google/nftables treats that as success
	}))
	return e
}

// batch returns the captured messages (between the batch begin and end
// messages google/nftables adds) and resets the encoder.
func (e *encoder) batch() ([]netlink.Message, error) {
	e.msgs = nil
	if err := e.conn.Flush(); err != nil {
		return nil, fmt.Errorf("encode nftables batch: %w", err)
	}
	msgs := e.msgs
	e.msgs = nil
	return msgs, nil
}

var (
	msgBatchBegin = netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN)
	MsgBatchEnd   = netlink.HeaderType(unix.NFNL_MSG_BATCH_END)
)

// nfgen is the nfgenmsg header that precedes the attributes of every
// nftables message.
func nfgen(family byte) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }
