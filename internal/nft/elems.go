package nft

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Set elements are encoded and decoded here, straight between our Elems and
// netlink bytes. They are the bulk of every big transaction and read back
// (110,000 elements for a node of a 10k-pod cluster), and going through
// google/nftables' SetElement and netlink.Attribute values cost about 1 KiB
// of garbage per element each way, which at that size is what set the
// agent's memory high-water mark.

// attrWriter appends netlink attributes to a buffer.
type attrWriter struct{ b []byte }

func (w *attrWriter) attr(typ uint16, payload []byte) {
	n := 4 + len(payload)
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(n))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, payload...)
	w.pad()
}

func (w *attrWriter) u32(typ uint16, v uint32) {
	w.b = binary.NativeEndian.AppendUint16(w.b, 8)
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = binary.BigEndian.AppendUint32(w.b, v)
}

func (w *attrWriter) str(typ uint16, s string) {
	n := 4 + len(s) + 1
	w.b = binary.NativeEndian.AppendUint16(w.b, uint16(n))
	w.b = binary.NativeEndian.AppendUint16(w.b, typ)
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
	w.pad()
}

// open starts a nested attribute; close(at, typ) ends it. (A pair rather
// than a callback: closures would be allocated per element.)
func (w *attrWriter) open() int {
	w.b = append(w.b, 0, 0, 0, 0)
	return len(w.b) - 4
}

func (w *attrWriter) close(at int, typ uint16) {
	binary.NativeEndian.PutUint16(w.b[at:], uint16(len(w.b)-at))
	binary.NativeEndian.PutUint16(w.b[at+2:], typ|unix.NLA_F_NESTED)
}

// value writes a nested NFTA_DATA_VALUE.
func (w *attrWriter) value(typ uint16, v []byte) {
	at := w.open()
	w.attr(unix.NFTA_DATA_VALUE, v)
	w.close(at, typ)
}

func (w *attrWriter) pad() {
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
}

// elemMessages encodes elements as NEWSETELEM (or DELSETELEM) messages of
// at most elemsPerMessage kernel elements each.
func elemMessages(set string, t SetType, es []Elem, del bool) []netlink.Message {
	m := &elemEncoder{set: set, typ: unix.NFT_MSG_NEWSETELEM, left: len(es)}
	if del {
		m.typ = unix.NFT_MSG_DELSETELEM
	}
	// Bytes per element (a range is two kernel elements), to size each
	// message once.
	switch t {
	case Addr4:
		m.per = 2 * 28
	case Addr6:
		m.per = 2 * 40
	default:
		m.per = 96 + len(set)
	}
	var next [16]byte
	for i := range es {
		e := &es[i]
		m.left = len(es) - i
		switch t {
		case Addr4, Addr6:
			// An address range is a start element and an end element one
			// past the range; a range reaching the last address has none.
			m.elem(e.Key, false, nil, false)
			if n := AddrFromKey(e.KeyEnd).Next(); n.IsValid() {
				k := next[:len(e.KeyEnd)]
				if t == Addr4 {
					a := n.As4()
					copy(k, a[:])
				} else {
					a := n.As16()
					copy(k, a[:])
				}
				m.elem(k, true, nil, false)
			}
		case PortMap, PortSet:
			m.elem(e.Key, false, e, true)
		default:
			m.elem(e.Key, false, e, false)
		}
	}
	m.finish()
	return m.out
}

// elemEncoder fills element messages one kernel element at a time.
type elemEncoder struct {
	set    string
	typ    int
	w      attrWriter
	listAt int // where the element list attribute starts
	count  int // elements in the current message
	out    []netlink.Message
	left   int // elements still to encode
	per    int // bytes an element takes, about
}

func (m *elemEncoder) elem(key []byte, end bool, e *Elem, withEnd bool) {
	if m.count == elemsPerMessage {
		m.finish()
	}
	if m.count == 0 {
		size := 64 + len(m.set) + m.per*min(m.left, elemsPerMessage)
		m.w = attrWriter{b: append(make([]byte, 0, size), nfgen(unix.NFPROTO_INET)...)}
		m.w.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		m.w.str(unix.NFTA_SET_ELEM_LIST_SET, m.set)
		m.listAt = len(m.w.b)
		m.w.b = append(m.w.b, 0, 0, 0, 0) // closed by finish
	}
	m.count++
	w := &m.w
	item := w.open()
	if end {
		w.u32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	w.value(unix.NFTA_SET_ELEM_KEY, key)
	if e != nil {
		if withEnd {
			w.value(nftables.NFTA_SET_ELEM_KEY_END, e.KeyEnd)
		}
		if v := e.Verdict; v != nil {
			data := w.open()
			verdict := w.open()
			w.u32(unix.NFTA_VERDICT_CODE, uint32(v.Kind))
			if v.Chain != "" {
				w.str(unix.NFTA_VERDICT_CHAIN, v.Chain)
			}
			w.close(verdict, unix.NFTA_DATA_VERDICT)
			w.close(data, unix.NFTA_SET_ELEM_DATA)
		}
		if e.Comment != "" {
			// Userdata is itself a TLV list: type, length, bytes.
			c := shortComment(e.Comment)
			at := w.open()
			w.b = append(w.b, byte(userdata.NFTNL_UDATA_SET_ELEM_COMMENT), byte(len(c)+1))
			w.b = append(w.b, c...)
			w.b = append(w.b, 0)
			binary.NativeEndian.PutUint16(w.b[at:], uint16(len(w.b)-at))
			binary.NativeEndian.PutUint16(w.b[at+2:], unix.NFTA_SET_ELEM_USERDATA)
			w.pad()
		}
	}
	w.close(item, uint16(m.count))
}

// finish closes the current message.
func (m *elemEncoder) finish() {
	if m.count == 0 {
		return
	}
	b := m.w.b
	binary.NativeEndian.PutUint16(b[m.listAt:], uint16(len(b)-m.listAt))
	binary.NativeEndian.PutUint16(b[m.listAt+2:], unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
	m.out = append(m.out, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | m.typ), Flags: netlink.Request | netlink.Create},
		Data:   b,
	})
	m.count = 0
}
