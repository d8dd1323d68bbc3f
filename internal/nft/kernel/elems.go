package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nft"
)

// Element replies are decoded here straight from netlink bytes, for the
// reason internal/nft encodes them itself: at 110,000 elements a read back
// through google/nftables' values cost about 1 KiB of garbage per element.

// walkAttrs calls f with the type (flags cleared) and payload of every
// attribute in b.
func walkAttrs(b []byte, f func(typ uint16, payload []byte)) error {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			return fmt.Errorf("malformed netlink attribute of length %d", n)
		}
		f(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[4:n])
		b = b[min((n+3)&^3, len(b)):]
	}
	return nil
}

// decodeElemReplies decodes the elements of the kernel's answers to a
// GETSETELEM dump or lookup: the one place element replies are read. It
// counts first: a set holds up to tens of thousands of elements, and
// growing the list by doubling costs more than the extra pass.
func decodeElemReplies(msgs []netlink.Message) ([]kernelElem, error) {
	count := 0
	for _, m := range msgs {
		if len(m.Data) >= 4 {
			_ = walkAttrs(m.Data[4:], func(t uint16, p []byte) {
				if t == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
					_ = walkAttrs(p, func(uint16, []byte) { count++ })
				}
			})
		}
	}
	kes := make([]kernelElem, 0, count)
	var d elemDecoder
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		var lerr error
		err := walkAttrs(m.Data[4:], func(t uint16, p []byte) {
			if t == unix.NFTA_SET_ELEM_LIST_ELEMENTS && lerr == nil {
				lerr = d.list(p, func(ke kernelElem) { kes = append(kes, ke) })
			}
		})
		if err = errors.Join(err, lerr); err != nil {
			return kes, err
		}
	}
	return kes, nil
}

// elemDecoder decodes element lists, sharing the verdicts they point to:
// a pod map holds hundreds of elements with the same few verdicts.
type elemDecoder struct {
	verdicts map[nft.Verdict]*nft.Verdict
}

// list decodes an NFTA_SET_ELEM_LIST_ELEMENTS payload. Keys point into the
// payload, which must not be reused while they are in use.
func (d *elemDecoder) list(payload []byte, add func(kernelElem)) error {
	return walkAttrs(payload, func(_ uint16, elem []byte) {
		var ke kernelElem
		_ = walkAttrs(elem, func(typ uint16, p []byte) {
			switch typ {
			case unix.NFTA_SET_ELEM_KEY:
				ke.key = dataValue(p)
			case nftables.NFTA_SET_ELEM_KEY_END:
				ke.keyEnd = dataValue(p)
			case unix.NFTA_SET_ELEM_FLAGS:
				if len(p) >= 4 {
					ke.end = binary.BigEndian.Uint32(p)&unix.NFT_SET_ELEM_INTERVAL_END != 0
				}
			case unix.NFTA_SET_ELEM_DATA:
				_ = walkAttrs(p, func(typ uint16, v []byte) {
					if typ == unix.NFTA_DATA_VERDICT {
						ke.verdict = d.verdict(v)
					}
				})
			case unix.NFTA_SET_ELEM_USERDATA:
				ke.comment, _ = userdata.GetString(p, userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
			}
		})
		add(ke)
	})
}

func dataValue(p []byte) []byte {
	var out []byte
	_ = walkAttrs(p, func(typ uint16, v []byte) {
		if typ == unix.NFTA_DATA_VALUE {
			out = v[:len(v):len(v)]
		}
	})
	return out
}

func (d *elemDecoder) verdict(p []byte) *nft.Verdict {
	var v nft.Verdict
	_ = walkAttrs(p, func(typ uint16, b []byte) {
		switch {
		case typ == unix.NFTA_VERDICT_CODE && len(b) >= 4:
			v.Kind = exprVerdictKind(int32(binary.BigEndian.Uint32(b)))
		case typ == unix.NFTA_VERDICT_CHAIN && len(b) > 0:
			if b[len(b)-1] == 0 {
				b = b[:len(b)-1]
			}
			v.Chain = string(b)
		}
	})
	if d.verdicts == nil {
		d.verdicts = map[nft.Verdict]*nft.Verdict{}
	}
	if shared, ok := d.verdicts[v]; ok {
		return shared
	}
	d.verdicts[v] = &v
	return &v
}
