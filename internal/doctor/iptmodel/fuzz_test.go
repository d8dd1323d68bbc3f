package iptmodel

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// FuzzModel decodes arbitrary expression attributes the way the doctor
// does (nlrules) and runs every version's model on the rule. Nothing may
// panic, every index the model reports must point into the rule, and 1.8.7
// and 1.8.8, which never fail on a rule, must report no decoder errors.
func FuzzModel(f *testing.F) {
	// The rules of TestDocumentedFacts and TestWhitelistByVersion.
	rules := [][]expr.Any{
		rule(ctState(6)),
		rule(oifname("wt0"), ctState(6)),
		rule(one(&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true}, &expr.Cmp{Register: 1, Data: u32(2)})),
		rule(one(&expr.Rt{Register: 1, Key: expr.RtTCPMSS}, &expr.Cmp{Register: 1, Data: u32(1400)})),
		rule(one(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 1, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xfc}, Xor: []byte{0}},
			&expr.Cmp{Register: 1, Data: []byte{0xb8}})),
		rule(one(&expr.Meta{Key: expr.MetaKeySKUID, Register: 1}, &expr.Cmp{Register: 1, Data: u32(0)})),
		rule(one(&expr.Ct{Key: expr.CtKeyPROTODST, Register: 1}, &expr.Range{Register: 1, FromData: []byte{0, 1}, ToData: []byte{0, 9}})),
		{&expr.Immediate{Register: 1, Data: u32(1)}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}},
		{&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: 2}, accept},
		{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Over: true}, accept},
		rule(oifname("eth0"))}
	for _, r := range rules {
		for _, family := range []byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
			f.Add(family, encodeExprs(family, r))
		}
	}
	f.Fuzz(func(t *testing.T, family byte, list []byte) {
		exprs := decodeExprs(t, family, list)
		if exprs == nil {
			return
		}
		inRule := func(i int) bool { return i >= 0 && i < len(exprs) }
		for _, v := range Versions {
			res := Rule(v, family, exprs)
			for _, i := range slices.Concat(res.Unlisted, res.Ignored) {
				if !inRule(i) {
					t.Fatalf("%s: index %d outside the %d-expression rule: %+v", v, i, len(exprs), res)
				}
			}
			for _, e := range res.Errors {
				if !inRule(e.Index) || e.Msg == "" {
					t.Fatalf("%s: decoder error %+v for a %d-expression rule", v, e, len(exprs))
				}
			}
			if !v.fatalErrors() && len(res.Errors) > 0 {
				t.Fatalf("%s never fails on a rule, yet the model reports %+v", v, res.Errors)
			}
			if r := CheckReaching(v, res); r.Exit != 0 && r.Exit != 3 {
				t.Fatalf("%s: -C exit %d", v, r.Exit)
			}
			_ = Command(v, family, exprs)
			_ = TableOf(v, family, "filter", []TableRule{{Chain: "FORWARD", Exprs: exprs}},
				[]BaseChain{{Name: "FORWARD", Hook: unix.NF_INET_FORWARD, Type: "filter"}})
		}
	})
}

// encodeExprs encodes a rule's expressions as the payload of its
// NFTA_RULE_EXPRESSIONS attribute.
func encodeExprs(family byte, exprs []expr.Any) []byte {
	ae := netlink.NewAttributeEncoder()
	for _, e := range exprs {
		b, err := expr.Marshal(family, e)
		if err != nil {
			panic(err) // a seed the library cannot encode is a mistake in the seed list
		}
		ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, b)
	}
	b, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// decodeExprs reads an NFTA_RULE_EXPRESSIONS payload as the doctor reads a
// dumped rule, or returns nil when the message does not parse.
func decodeExprs(t *testing.T, family byte, list []byte) []expr.Any {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, list)
	attrs, err := ae.Encode()
	if err != nil {
		return nil // longer than an attribute can be
	}
	r, err := nlrules.ParseRule(netlink.Message{Data: append([]byte{family, 0, 0, 0}, attrs...)})
	if err != nil || len(r.Exprs) == 0 {
		return nil
	}
	return r.Decoded()
}
