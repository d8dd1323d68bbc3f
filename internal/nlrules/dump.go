package nlrules

import (
	"bytes"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table is an nf_tables table.
type Table struct {
	Family byte   `json:"family"`
	Name   string `json:"name"`
	Flags  uint32 `json:"flags,omitempty"`
	Handle uint64 `json:"handle"`
}

// Hook places a base chain in the packet path.
type Hook struct {
	Num      uint32 `json:"num"`
	Priority int32  `json:"priority"`
	Device   string `json:"device,omitempty"`
}

// Chain is an nf_tables chain; Hook is nil for a regular chain.
type Chain struct {
	Family byte    `json:"family"`
	Table  string  `json:"table"`
	Name   string  `json:"name"`
	Handle uint64  `json:"handle"`
	Hook   *Hook   `json:"hook,omitempty"`
	Type   string  `json:"type,omitempty"`
	Policy *uint32 `json:"policy,omitempty"`
}

// RawExpr is one rule expression exactly as the kernel returned it.
type RawExpr struct {
	Name string `json:"name"`
	Data []byte `json:"data"` // NFTA_EXPR_DATA payload, without the nest header
}

// Rule is one rule with its raw expressions. Index is its 0-based position in
// the chain as dumped, which is the order packets (and iptables) see.
type Rule struct {
	Family   byte      `json:"family"`
	Table    string    `json:"table"`
	Chain    string    `json:"chain"`
	Handle   uint64    `json:"handle"`
	Index    int       `json:"index"`
	Exprs    []RawExpr `json:"exprs"`
	UserData []byte    `json:"userdata,omitempty"`
	Compat   []byte    `json:"compat,omitempty"` // NFTA_RULE_COMPAT nest payload, iptables-nft sets it
}

// SameExprs reports whether two rules carry byte-identical expressions.
func SameExprs(a, b []RawExpr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// Ruleset is every table, chain and rule of a namespace at one generation.
type Ruleset struct {
	Generation uint32
	Tables     []Table
	Chains     []Chain
	Rules      []Rule
}

// ChainRules returns the rules of one chain in order.
func (rs *Ruleset) ChainRules(family byte, table, chain string) []Rule {
	var out []Rule
	for _, r := range rs.Rules {
		if r.Family == family && r.Table == table && r.Chain == chain {
			out = append(out, r)
		}
	}
	return out
}

// Chain finds a chain by name.
func (rs *Ruleset) Chain(family byte, table, name string) (Chain, bool) {
	for _, c := range rs.Chains {
		if c.Family == family && c.Table == table && c.Name == name {
			return c, true
		}
	}
	return Chain{}, false
}

// Read dumps the whole ruleset. It retries when the generation changed
// during the dump, so tables, chains and rules describe one moment.
func (c *Conn) Read() (*Ruleset, error) {
	for try := 0; ; try++ {
		rs, err := c.readOnce()
		if err != nil {
			return nil, err
		}
		gen, err := c.Generation()
		if err != nil {
			return nil, err
		}
		if gen == rs.Generation || try == 4 {
			return rs, nil
		}
	}
}

func (c *Conn) readOnce() (*Ruleset, error) {
	gen, err := c.Generation()
	if err != nil {
		return nil, err
	}
	rs := &Ruleset{Generation: gen}
	msgs, err := c.dump(unix.NFT_MSG_GETTABLE, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, m := range msgs {
		t, err := parseTable(m)
		if err != nil {
			return nil, fmt.Errorf("decode table: %w", err)
		}
		rs.Tables = append(rs.Tables, t)
	}
	if msgs, err = c.dump(unix.NFT_MSG_GETCHAIN, unix.AF_UNSPEC); err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, m := range msgs {
		ch, err := parseChain(m)
		if err != nil {
			return nil, fmt.Errorf("decode chain: %w", err)
		}
		rs.Chains = append(rs.Chains, ch)
	}
	if msgs, err = c.dump(unix.NFT_MSG_GETRULE, unix.AF_UNSPEC); err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	index := map[string]int{}
	for _, m := range msgs {
		r, err := ParseRule(m)
		if err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		key := fmt.Sprintf("%d/%s/%s", r.Family, r.Table, r.Chain)
		r.Index = index[key]
		index[key]++
		rs.Rules = append(rs.Rules, r)
	}
	return rs, nil
}

func family(m netlink.Message) byte {
	if len(m.Data) == 0 {
		return 0
	}
	return m.Data[0]
}

func parseTable(m netlink.Message) (Table, error) {
	t := Table{Family: family(m)}
	ad, err := decoder(m.Data)
	if err != nil {
		return t, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_TABLE_NAME:
			t.Name = ad.String()
		case unix.NFTA_TABLE_FLAGS:
			t.Flags = ad.Uint32()
		case nftaTableHandle:
			t.Handle = ad.Uint64()
		}
	}
	return t, ad.Err()
}

func parseChain(m netlink.Message) (Chain, error) {
	ch := Chain{Family: family(m)}
	ad, err := decoder(m.Data)
	if err != nil {
		return ch, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CHAIN_TABLE:
			ch.Table = ad.String()
		case unix.NFTA_CHAIN_NAME:
			ch.Name = ad.String()
		case unix.NFTA_CHAIN_HANDLE:
			ch.Handle = ad.Uint64()
		case unix.NFTA_CHAIN_TYPE:
			ch.Type = ad.String()
		case unix.NFTA_CHAIN_POLICY:
			p := ad.Uint32()
			ch.Policy = &p
		case unix.NFTA_CHAIN_HOOK:
			h := &Hook{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case unix.NFTA_HOOK_HOOKNUM:
						h.Num = nad.Uint32()
					case unix.NFTA_HOOK_PRIORITY:
						h.Priority = int32(nad.Uint32())
					case unix.NFTA_HOOK_DEV:
						h.Device = nad.String()
					}
				}
				return nil
			})
			ch.Hook = h
		}
	}
	return ch, ad.Err()
}

// ParseRule decodes one NFT_MSG_NEWRULE message, as a rule dump returns it.
func ParseRule(m netlink.Message) (Rule, error) {
	r := Rule{Family: family(m)}
	ad, err := decoder(m.Data)
	if err != nil {
		return r, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			r.Table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			r.Chain = ad.String()
		case unix.NFTA_RULE_HANDLE:
			r.Handle = ad.Uint64()
		case unix.NFTA_RULE_USERDATA:
			r.UserData = append([]byte(nil), ad.Bytes()...)
		case unix.NFTA_RULE_COMPAT:
			r.Compat = append([]byte(nil), ad.Bytes()...)
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					var e RawExpr
					list.Nested(func(ed *netlink.AttributeDecoder) error {
						for ed.Next() {
							switch ed.Type() {
							case unix.NFTA_EXPR_NAME:
								e.Name = ed.String()
							case unix.NFTA_EXPR_DATA:
								e.Data = append([]byte(nil), ed.Bytes()...)
							}
						}
						return nil
					})
					r.Exprs = append(r.Exprs, e)
				}
				return nil
			})
		}
	}
	return r, ad.Err()
}

// nftaTableHandle is NFTA_TABLE_HANDLE, which golang.org/x/sys lacks.
const nftaTableHandle = 4

// UserComment returns the comment nft stores in a rule's user data
// (NFTNL_UDATA_RULE_COMMENT, a type-length-value record), or "".
func UserComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return ""
		}
		if typ == 0 {
			v := ud[2 : 2+n]
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			return string(v)
		}
		ud = ud[2+n:]
	}
	return ""
}
