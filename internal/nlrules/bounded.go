package nlrules

import (
	"errors"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// google/nftables v0.3.0 reads three expressions at fixed offsets of their
// attributes and panics on a short one: an immediate's verdict, log and
// connlimit (FuzzParseRule found the first two). They are decoded here with
// mdlayher/netlink's attribute decoder, which reports a short attribute as
// an error, so a foreign rule never takes those paths. Every other
// expression google/nftables decodes through the same attribute decoder.

// decodeVerdict reads the verdict of an immediate expression
// (NFTA_IMMEDIATE_DATA > NFTA_DATA_VERDICT > code and chain).
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

// decodeLog reads a log expression as google/nftables would: Key has bit n
// set for each attribute of type n present.
func decodeLog(b []byte) (expr.Any, error) {
	e := &expr.Log{}
	err := attrs(b, func(ad *netlink.AttributeDecoder) {
		e.Key |= 1 << uint32(ad.Type())
		switch ad.Type() {
		case unix.NFTA_LOG_GROUP:
			e.Group = ad.Uint16()
		case unix.NFTA_LOG_PREFIX:
			e.Data = []byte(ad.String())
		case unix.NFTA_LOG_SNAPLEN:
			e.Snaplen = ad.Uint32()
		case unix.NFTA_LOG_QTHRESHOLD:
			e.QThreshold = ad.Uint16()
		case unix.NFTA_LOG_LEVEL:
			e.Level = expr.LogLevel(ad.Uint32())
		case unix.NFTA_LOG_FLAGS:
			e.Flags = expr.LogFlags(ad.Uint32())
		}
	})
	return e, err
}

// decodeConnlimit reads a connlimit expression.
func decodeConnlimit(b []byte) (expr.Any, error) {
	e := &expr.Connlimit{}
	err := attrs(b, func(ad *netlink.AttributeDecoder) {
		switch ad.Type() {
		case expr.NFTA_CONNLIMIT_COUNT:
			e.Count = ad.Uint32()
		case expr.NFTA_CONNLIMIT_FLAGS:
			e.Flags = ad.Uint32()
		}
	})
	return e, err
}
