package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Rules are read with one dump of the whole table, and each expression is
// decoded by name with google/nftables' decoders. google/nftables' own rule
// listing skips expressions it cannot decode, which would let a rule differ
// from ours unseen; here such an expression is kept as an opaque one, so the
// rule compares unequal.

// keptRule is a rule read back with the chain it belongs to.
type keptRule struct {
	Rule
	chain string
}

func readRules(sock *netlink.Conn) ([]keptRule, error) {
	req, err := request(unix.NFT_MSG_GETRULE, netlink.Dump,
		netlink.Attribute{Type: unix.NFTA_RULE_TABLE, Data: cstring(TableName)})
	if err != nil {
		return nil, err
	}
	msgs, err := sock.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list rules of table inet %s: %w", TableName, err)
	}
	out := make([]keptRule, 0, len(msgs))
	for _, m := range msgs {
		r, err := decodeRule(m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeRule(m netlink.Message) (keptRule, error) {
	var r keptRule
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return r, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_CHAIN:
			r.chain = ad.String()
		case unix.NFTA_RULE_USERDATA:
			r.Comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(e *netlink.AttributeDecoder) error {
						r.Exprs = append(r.Exprs, decodeExpr(e))
						return nil
					})
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return r, fmt.Errorf("decode rule: %w", err)
	}
	return r, nil
}

// opaque stands for an expression we could not decode. It embeds expr.Any
// only to satisfy the interface; it is never encoded, because rules read back
// are compared, not sent.
type opaque struct {
	expr.Any
	Name string
	Data []byte
	Err  string
}

func decodeExpr(ad *netlink.AttributeDecoder) expr.Any {
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if name == "byteorder" {
		if e, err := decodeByteorder(data); err == nil {
			return e
		}
	}
	e := exprByName(name)
	if e == nil {
		return &opaque{Name: name, Data: data}
	}
	if err := expr.Unmarshal(unix.NFPROTO_INET, data, e); err != nil {
		return &opaque{Name: name, Data: data, Err: err.Error()}
	}
	// A verdict is an immediate writing the verdict register.
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(unix.NFPROTO_INET, data, v); err == nil {
			return v
		}
	}
	return e
}

func exprByName(name string) expr.Any {
	switch name {
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "payload":
		return &expr.Payload{}
	case "lookup":
		return &expr.Lookup{}
	case "immediate":
		return &expr.Immediate{}
	case "bitwise":
		return &expr.Bitwise{}
	case "ct":
		return &expr.Ct{}
	case "range":
		return &expr.Range{}
	case "counter":
		return &expr.Counter{}
	case "log":
		return &expr.Log{}
	case "limit":
		return &expr.Limit{}
	case "reject":
		return &expr.Reject{}
	case "fib":
		return &expr.Fib{}
	case "match":
		return &expr.Match{}
	case "target":
		return &expr.Target{}
	case "dynset":
		return &expr.Dynset{}
	case "nat":
		return &expr.NAT{}
	case "masq":
		return &expr.Masq{}
	case "quota":
		return &expr.Quota{}
	case "exthdr":
		return &expr.Exthdr{}
	}
	return nil
}

// decodeByteorder decodes the byteorder expression, which google/nftables
// v0.3.0 can encode but not decode.
func decodeByteorder(data []byte) (expr.Any, error) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	e := &expr.Byteorder{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_BYTEORDER_SREG:
			e.SourceRegister = ad.Uint32()
		case unix.NFTA_BYTEORDER_DREG:
			e.DestRegister = ad.Uint32()
		case unix.NFTA_BYTEORDER_OP:
			e.Op = expr.ByteorderOp(ad.Uint32())
		case unix.NFTA_BYTEORDER_LEN:
			e.Len = ad.Uint32()
		case unix.NFTA_BYTEORDER_SIZE:
			e.Size = ad.Uint32()
		}
	}
	return e, ad.Err()
}
