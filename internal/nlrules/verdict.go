package nlrules

import (
	"errors"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// decodeVerdict reads the verdict of an immediate expression
// (NFTA_IMMEDIATE_DATA > NFTA_DATA_VERDICT > code and chain) attribute by
// attribute. google/nftables v0.3.0 reads it at fixed offsets and panics on a
// short one (found by FuzzParseRule), so a foreign rule can never take that
// path here.
func decodeVerdict(data []byte) (*expr.Verdict, error) {
	v := &expr.Verdict{}
	haveCode := false
	err := attrs(data, func(ad *netlink.AttributeDecoder) {
		if ad.Type() != unix.NFTA_IMMEDIATE_DATA {
			return
		}
		ad.Nested(func(d *netlink.AttributeDecoder) error {
			for d.Next() {
				if d.Type() != unix.NFTA_DATA_VERDICT {
					continue
				}
				d.Nested(func(vd *netlink.AttributeDecoder) error {
					for vd.Next() {
						switch vd.Type() {
						case unix.NFTA_VERDICT_CODE:
							v.Kind, haveCode = expr.VerdictKind(int32(vd.Uint32())), true
						case unix.NFTA_VERDICT_CHAIN:
							v.Chain = vd.String()
						}
					}
					return nil
				})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if !haveCode {
		return nil, errors.New("verdict without a code")
	}
	return v, nil
}
