package nlrules

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Replacement swaps one rule's expressions in place: the kernel puts the
// new rule exactly where the old one was.
type Replacement struct {
	Family   byte
	Table    string
	Chain    string
	Handle   uint64 // the rule replaced
	Exprs    []RawExpr
	UserData []byte
	Compat   []byte
}

// ErrGenerationChanged means the ruleset changed after it was read: nothing
// was written.
var ErrGenerationChanged = errors.New("the ruleset changed since it was read; nothing was written")

// Replace commits all replacements as one nf_tables transaction. The batch
// carries the generation the caller planned from, so the kernel refuses it
// whole if anyone changed the ruleset in between.
func (c *Conn) Replace(generation uint32, reps []Replacement) error {
	if len(reps) == 0 {
		return nil
	}
	begin := netlink.NewAttributeEncoder()
	begin.ByteOrder = binary.BigEndian
	begin.Uint32(unix.NFNL_BATCH_GENID, generation)
	bb, err := begin.Encode()
	if err != nil {
		return err
	}
	msgs := []netlink.Message{{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
		Data:   append(nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES), bb...),
	}}
	for _, r := range reps {
		data, err := ruleAttrs(r)
		if err != nil {
			return fmt.Errorf("encode rule %s %s handle %d: %w", r.Table, r.Chain, r.Handle, err)
		}
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{Type: msgType(unix.NFT_MSG_NEWRULE), Flags: netlink.Request | netlink.Acknowledge | netlink.Replace},
			Data:   append(nfgen(r.Family, 0), data...),
		})
	}
	msgs = append(msgs, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request},
		Data:   nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	})
	if _, err := c.nl.SendMessages(msgs); err != nil {
		return fmt.Errorf("send nf_tables transaction: %w", err)
	}
	for acks := 0; acks < len(reps); {
		got, err := c.nl.Receive()
		if err != nil {
			if errors.Is(err, unix.ERESTART) || errors.Is(err, unix.EAGAIN) {
				return ErrGenerationChanged
			}
			return fmt.Errorf("nf_tables transaction refused: %w", err)
		}
		for _, m := range got {
			if m.Header.Type == netlink.Error {
				acks++
			}
		}
	}
	return nil
}

func ruleAttrs(r Replacement) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_RULE_TABLE, r.Table)
	ae.String(unix.NFTA_RULE_CHAIN, r.Chain)
	ae.Uint64(unix.NFTA_RULE_HANDLE, r.Handle)
	ae.Nested(unix.NFTA_RULE_EXPRESSIONS, func(list *netlink.AttributeEncoder) error {
		for _, e := range r.Exprs {
			e := e
			list.Nested(unix.NFTA_LIST_ELEM, func(el *netlink.AttributeEncoder) error {
				el.String(unix.NFTA_EXPR_NAME, e.Name)
				el.Bytes(unix.NLA_F_NESTED|unix.NFTA_EXPR_DATA, e.Data)
				return nil
			})
		}
		return nil
	})
	if r.Compat != nil {
		ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_RULE_COMPAT, r.Compat)
	}
	if r.UserData != nil {
		ae.Bytes(unix.NFTA_RULE_USERDATA, r.UserData)
	}
	return ae.Encode()
}
