package nlrules

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nftext"
)

// FuzzParseRule decodes arbitrary bytes as an nf_tables rule message (the
// nfgenmsg header and the rule's attributes), then every expression in it,
// then renders the rule. Nothing may panic, not even inside google/nftables
// (Decode's recover is a last resort that hides a bug), and what the
// decoder keeps must come from the message: never more bytes than it holds.
func FuzzParseRule(f *testing.F) {
	for _, s := range seedRules() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := netlink.Message{Data: data}
		_, _ = parseTable(m)
		_, _ = parseChain(m)
		r, err := ParseRule(m)
		if err != nil {
			return
		}
		kept := len(r.Table) + len(r.Chain) + len(r.UserData) + len(r.Compat)
		for _, e := range r.Exprs {
			kept += len(e.Name) + len(e.Data)
		}
		if kept > len(data) || len(r.Exprs) > len(data)/4 {
			t.Fatalf("the decoder kept %d bytes and %d expressions from a %d-byte message", kept, len(r.Exprs), len(data))
		}
		for i, x := range r.Decoded() {
			if u, ok := x.(*nftext.Undecoded); ok && u.Err != nil && strings.Contains(u.Err.Error(), "panicked") {
				t.Fatalf("expression %d (%q) panicked while decoding: %v\ndata %x", i, u.Name, u.Err, u.Data)
			}
		}
		_ = nftext.Rule(r.Decoded(), nftext.Options{Family: r.Family})
		_ = UserComment(r.UserData)
	})
}

// FuzzUserComment reads arbitrary user data as nft's comment records.
func FuzzUserComment(f *testing.F) {
	f.Add([]byte{0, 6, 'h', 'e', 'l', 'l', 'o', 0})
	f.Add([]byte{0, 9, 'x'})
	f.Add([]byte{1, 1, 0, 0, 3, 'a', 'b', 0})
	f.Fuzz(func(t *testing.T, ud []byte) {
		if c := UserComment(ud); len(c) > len(ud) {
			t.Fatalf("comment %q is longer than the user data %x", c, ud)
		}
	})
}

// seedRules encodes, as the kernel sends them, rules with every expression
// kind the decoders handle: the forms the tests of this package, the text
// printer and the iptables model read.
func seedRules() [][]byte {
	le32 := func(v uint32) []byte { b := make([]byte, 4); binary.LittleEndian.PutUint32(b, v); return b }
	ifname := func(s string) []byte { b := make([]byte, 16); copy(b, s); return b }
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	comment := xt.Comment("hi")
	rules := [][]expr.Any{
		{&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le32(6), Xor: le32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(0)}, accept},
		{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Register: 1, Data: ifname("wt0")}, &expr.Counter{}, accept},
		{&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}, &expr.Cmp{Register: 1, Data: le32(2)}, accept},
		{&expr.Rt{Register: 1, Key: expr.RtTCPMSS}, &expr.Cmp{Register: 1, Data: le32(1400)}, accept},
		{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: "myset", SetID: 1}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "FOO"}},
		{&expr.Ct{Key: expr.CtKeyPROTODST, Register: 1}, &expr.Range{Register: 1, FromData: []byte{0, 1}, ToData: []byte{0, 9}}, accept},
		{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderNtoh, Len: 2, Size: 2},
			&expr.Cmp{Register: 1, Data: []byte{0, 80}}, &expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: 5}, accept},
		{&expr.Immediate{Register: 1, Data: le32(1)}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}},
		{&expr.Match{Name: "comment", Info: &comment}, &expr.Target{Name: "ACCEPT", Info: &xt.Unknown{}}},
		{&expr.Socket{Key: expr.SocketKeyTransparent, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{1}},
			&expr.Limit{Type: expr.LimitTypePkts, Rate: 10, Unit: expr.LimitTimeSecond, Burst: 5}, &expr.Verdict{Kind: expr.VerdictDrop}},
		{&expr.Numgen{Register: 1, Modulus: 2, Type: unix.NFT_NG_INCREMENTAL}, &expr.Cmp{Register: 1, Data: le32(0)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}},
		{&expr.Connlimit{Count: 10}, &expr.Quota{Bytes: 1000}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}},
	}
	var out [][]byte
	for _, family := range []byte{unix.NFPROTO_IPV4, unix.NFPROTO_INET} {
		for _, r := range rules {
			out = append(out, encodeRule(family, r))
		}
	}
	// What TestDecodeKeepsWhatItCannotRead reads: kinds and data
	// google/nftables cannot handle.
	out = append(out, encodeRaw(unix.NFPROTO_IPV4, RawExpr{Name: "osf", Data: []byte{1, 2, 3, 4}}),
		encodeRaw(unix.NFPROTO_IPV4, RawExpr{Name: "ct", Data: []byte{0xff}}))
	return out
}

// encodeRule builds the NFT_MSG_NEWRULE payload a rule dump returns.
func encodeRule(family byte, exprs []expr.Any) []byte {
	var raw []RawExpr
	for _, e := range exprs {
		b, err := expr.Marshal(family, e)
		if err != nil {
			panic(err) // a seed the library cannot encode is a mistake in the seed list
		}
		ad, err := netlink.NewAttributeDecoder(b)
		if err != nil {
			panic(err)
		}
		ad.ByteOrder = binary.BigEndian
		var x RawExpr
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_EXPR_NAME:
				x.Name = ad.String()
			case unix.NFTA_EXPR_DATA:
				x.Data = ad.Bytes()
			}
		}
		raw = append(raw, x)
	}
	return encodeRaw(family, raw...)
}

func encodeRaw(family byte, exprs ...RawExpr) []byte {
	data, err := ruleAttrs(Replacement{Family: family, Table: "filter", Chain: "FORWARD", Handle: 7, Exprs: exprs, UserData: []byte{0, 3, 'h', 'i', 0}})
	if err != nil {
		panic(err)
	}
	return append(nfgen(family, 0), data...)
}
