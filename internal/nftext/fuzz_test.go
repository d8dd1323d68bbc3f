package nftext_test

import (
	"encoding/binary"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nftext"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// FuzzRule prints rules decoded from arbitrary expression attributes, as the
// doctor and the dataplane's read-back do, with anonymous sets whose
// elements are arbitrary too. Nothing may panic, and the text stays within
// a fixed multiple of the input: every byte prints as a few characters.
func FuzzRule(f *testing.F) {
	families, rules := nftext.SeedRules()
	for i, r := range rules {
		f.Add(families[i], encodeExprs(families[i], r), []byte{0, 80, 1, 187})
	}
	f.Fuzz(func(t *testing.T, family byte, list, setData []byte) {
		exprs := decodeExprs(family, list)
		if exprs == nil {
			return
		}
		o := nftext.Options{Family: family, AnonSet: func(name string) ([]nftext.SetElement, bool) {
			// Cut the set data into 2-byte keys; every third element is
			// an interval, as an interval set holds them.
			var els []nftext.SetElement
			for i := 0; i+2 <= len(setData); i += 2 {
				el := nftext.SetElement{Key: setData[i : i+2]}
				if i%6 == 4 {
					el.KeyEnd = setData[i-2 : i]
				}
				els = append(els, el)
			}
			return els, len(name) > 0 && name[0] == '_'
		}}
		out := nftext.Rule(exprs, o)
		if limit := 64 + 32*(len(list)+len(setData)); len(out) > limit {
			t.Fatalf("%d characters of text from %d bytes of input (limit %d): %q", len(out), len(list)+len(setData), limit, out)
		}
	})
}

// encodeExprs encodes a rule's expressions as the payload of its
// NFTA_RULE_EXPRESSIONS attribute; an Undecoded one keeps its raw bytes.
func encodeExprs(family byte, exprs []expr.Any) []byte {
	ae := netlink.NewAttributeEncoder()
	for _, e := range exprs {
		var b []byte
		var err error
		if u, ok := e.(*nftext.Undecoded); ok {
			el := netlink.NewAttributeEncoder()
			el.String(unix.NFTA_EXPR_NAME, u.Name)
			el.Bytes(unix.NLA_F_NESTED|unix.NFTA_EXPR_DATA, u.Data)
			b, err = el.Encode()
		} else {
			b, err = expr.Marshal(family, withInfo(e))
		}
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

// withInfo gives an xtables match or target without info (the tests build
// them so) an empty one, which google/nftables needs to encode it.
func withInfo(e expr.Any) expr.Any {
	switch e := e.(type) {
	case *expr.Match:
		if e.Info == nil {
			c := *e
			c.Info = &xt.Unknown{}
			return &c
		}
	case *expr.Target:
		if e.Info == nil {
			c := *e
			c.Info = &xt.Unknown{}
			return &c
		}
	}
	return e
}

// decodeExprs reads an NFTA_RULE_EXPRESSIONS payload as a rule dump is
// read, or returns nil when the message does not parse.
func decodeExprs(family byte, list []byte) []expr.Any {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, list)
	attrs, err := ae.Encode()
	if err != nil {
		return nil
	}
	r, err := nlrules.ParseRule(netlink.Message{Data: append([]byte{family, 0, 0, 0}, attrs...)})
	if err != nil || len(r.Exprs) == 0 {
		return nil
	}
	return r.Decoded()
}
