package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reading back: chains and rules through google/nftables (its expression
// decoders are the valuable part), table, sets and elements with our own
// small dumps, because v0.3.0 loses a verdict map's key type when decoding a
// set and does not expose the table's owner.

// tableInfo is the kernel's view of kube-fence's table header.
type tableInfo struct {
	Flags uint32
	Owner uint32 // netlink port ID of the owning socket, 0 when unowned
}

// Table flags (include/uapi/linux/netfilter/nf_tables.h).
const (
	tableFlagOwner   uint32 = 0x2
	tableFlagPersist uint32 = 0x4
	nftaTableOwner          = 7 // NFTA_TABLE_OWNER, newer than x/sys knows
)

func nfgen(family byte) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }

func request(msgType int, flags netlink.HeaderFlags, attrs ...netlink.Attribute) (netlink.Message, error) {
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType), Flags: netlink.Request | flags},
		Data:   append(nfgen(unix.NFPROTO_INET), b...),
	}, nil
}

func cstring(s string) []byte { return append([]byte(s), 0) }

// readTableInfo returns the table header, or nil when there is no table.
func readTableInfo(sock *netlink.Conn) (*tableInfo, error) {
	// No ack flag: the kernel answers a get with the object or an error,
	// and an extra ack would be left in the socket for the next request.
	req, err := request(unix.NFT_MSG_GETTABLE, 0,
		netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: cstring(nft.TableName)})
	if err != nil {
		return nil, err
	}
	msgs, err := sock.Execute(req)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get table inet %s: %w", nft.TableName, err)
	}
	info := &tableInfo{}
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_TABLE_FLAGS:
				info.Flags = ad.Uint32()
			case nftaTableOwner:
				info.Owner = ad.Uint32()
			}
		}
	}
	return info, nil
}

// readSets returns every set of the table, with its elements if elems.
func readSets(sock *netlink.Conn, elems bool) (map[string]*nft.Set, error) {
	req, err := request(unix.NFT_MSG_GETSET, netlink.Dump,
		netlink.Attribute{Type: unix.NFTA_SET_TABLE, Data: cstring(nft.TableName)})
	if err != nil {
		return nil, err
	}
	msgs, err := sock.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list sets of table inet %s: %w", nft.TableName, err)
	}
	sets := map[string]*nft.Set{}
	for _, m := range msgs {
		name, typ, err := decodeSetHeader(m)
		if err != nil {
			return nil, err
		}
		s := &nft.Set{Name: name, Type: typ}
		if elems {
			if s.Elems, err = readElems(sock, name, typ); err != nil {
				return nil, err
			}
		}
		sets[name] = s
	}
	return sets, nil
}

// decodeSetHeader classifies a set into one of the shapes kube-fence uses;
// any other shape (a set someone replaced) gets type 0 and so never matches.
func decodeSetHeader(m netlink.Message) (string, nft.SetType, error) {
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return "", 0, err
	}
	ad.ByteOrder = binary.BigEndian
	var name string
	var flags, keyType, keyLen, dataType uint32
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_NAME:
			name = ad.String()
		case unix.NFTA_SET_FLAGS:
			flags = ad.Uint32()
		case unix.NFTA_SET_KEY_TYPE:
			keyType = ad.Uint32()
		case unix.NFTA_SET_KEY_LEN:
			keyLen = ad.Uint32()
		case unix.NFTA_SET_DATA_TYPE:
			dataType = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return "", 0, fmt.Errorf("decode set: %w", err)
	}
	isMap := flags&unix.NFT_SET_MAP != 0
	interval := flags&unix.NFT_SET_INTERVAL != 0
	verdictMap := isMap && dataType == unix.NFT_DATA_VERDICT
	switch {
	case !isMap && interval && keyLen == 4 && keyType == typeIPv4Addr:
		return name, nft.Addr4, nil
	case !isMap && interval && keyLen == 16 && keyType == typeIPv6Addr:
		return name, nft.Addr6, nil
	case !isMap && !interval && keyLen == 4 && keyType == typeIPv4Addr:
		return name, nft.Host4, nil
	case !isMap && !interval && keyLen == 16 && keyType == typeIPv6Addr:
		return name, nft.Host6, nil
	case verdictMap && !interval && keyLen == 4 && keyType == typeIPv4Addr:
		return name, nft.PodMap4, nil
	case verdictMap && !interval && keyLen == 16 && keyType == typeIPv6Addr:
		return name, nft.PodMap6, nil
	case verdictMap && interval && keyLen == 8 && keyType == typeProtoPort:
		return name, nft.PortMap, nil
	case !isMap && interval && keyLen == 8 && keyType == typeProtoPort:
		return name, nft.PortSet, nil
	}
	return name, 0, nil
}

// Kernel set data type numbers (nftables' datatype.h): the key types of the
// sets kube-fence creates. A concatenation packs its fields' types 6 bits
// each.
const (
	typeIPv4Addr    = 7
	typeIPv6Addr    = 8
	typeInetProto   = 12
	typeInetService = 13
	typeProtoPort   = typeInetProto<<6 | typeInetService
)

// kernelElem is an element as the kernel returns it.
type kernelElem struct {
	key, keyEnd []byte
	end         bool // NFT_SET_ELEM_INTERVAL_END
	verdict     *nft.Verdict
	comment     string
}

func readElems(sock *netlink.Conn, set string, typ nft.SetType) ([]nft.Elem, error) {
	req, err := request(unix.NFT_MSG_GETSETELEM, netlink.Dump,
		netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstring(nft.TableName)},
		netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstring(set)})
	if err != nil {
		return nil, err
	}
	msgs, err := sock.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list elements of set %s: %w", set, err)
	}
	kes, err := decodeElemReplies(msgs)
	if err != nil {
		return nil, fmt.Errorf("decode elements of set %s: %w", set, err)
	}
	return canonicalElems(typ, kes), nil
}

// canonicalElems turns kernel elements into canonical ones. For address
// interval sets the kernel returns start and end elements in any order; an
// end without a start (nft adds one at address zero) carries nothing, and a
// start without an end runs to the last address.
func canonicalElems(typ nft.SetType, kes []kernelElem) []nft.Elem {
	out := make([]nft.Elem, 0, len(kes))
	switch typ {
	case nft.Addr4, nft.Addr6:
		order := func(a, b kernelElem) int {
			if c := bytes.Compare(a.key, b.key); c != 0 {
				return c
			}
			// At one key, an end closes the range before it and a start
			// opens the next.
			return boolInt(!a.end) - boolInt(!b.end)
		}
		// The kernel's interval tree dumps from the highest key down:
		// reversing is enough then, and much cheaper than sorting.
		slices.Reverse(kes)
		if !slices.IsSortedFunc(kes, order) {
			slices.SortFunc(kes, order)
		}
		var start netip.Addr
		open := false
		var keys []byte // all keys in one allocation: sets run to thousands of ranges
		closeAt := func(last netip.Addr) {
			if open && last.IsValid() && start.Compare(last) <= 0 {
				if keys == nil {
					keys = make([]byte, 0, 2*len(kes)*start.BitLen()/8)
				}
				at := len(keys)
				keys = appendAddr(keys, start)
				mid := len(keys)
				keys = appendAddr(keys, last)
				out = append(out, nft.Elem{Key: keys[at:mid:mid], KeyEnd: keys[mid:len(keys):len(keys)]})
			}
			open = false
		}
		for _, ke := range kes {
			a := nft.AddrFromKey(ke.key)
			if !a.IsValid() {
				continue // a key of the wrong length: not ours, the diff will show it
			}
			if ke.end {
				closeAt(a.Prev())
				continue
			}
			closeAt(a.Prev()) // two starts in a row: the first runs up to the second
			start, open = a, true
		}
		if open {
			closeAt(maxAddr(start.Is4()))
		}
		return out
	default:
		for _, ke := range kes {
			out = append(out, nft.Elem{Key: ke.key, KeyEnd: ke.keyEnd, Verdict: ke.verdict, Comment: ke.comment})
		}
	}
	nft.SortElems(out)
	// A set holds one element per key, yet a dump can return one twice:
	// it resumes by position, and the kernel may resize a hash set between
	// the parts of a dump. Seen in the lab right after the transaction that
	// filled a pod map; the duplicate read as an unexpected element, which
	// a repair would have deleted.
	return slices.CompactFunc(out, func(a, b nft.Elem) bool {
		return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.KeyEnd, b.KeyEnd)
	})
}

// appendAddr appends a's bytes: 4 for IPv4, 16 for IPv6.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func maxAddr(v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	var b [16]byte
	for i := range b {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b)
}

func exprVerdictKind(code int32) expr.VerdictKind { return expr.VerdictKind(code) }

// readChains returns the table's chains with their rules: one dump of the
// chain headers and one of all the table's rules, both decoded by us
// (decodeChain, nlrules).
func readChains(sock *netlink.Conn) (map[string]*nft.Chain, error) {
	req, err := request(unix.NFT_MSG_GETCHAIN, netlink.Dump,
		netlink.Attribute{Type: unix.NFTA_CHAIN_TABLE, Data: cstring(nft.TableName)})
	if err != nil {
		return nil, err
	}
	msgs, err := sock.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	chains := map[string]*nft.Chain{}
	for _, m := range msgs {
		ch, table, err := decodeChain(m)
		if err != nil {
			return nil, fmt.Errorf("decode chain: %w", err)
		}
		if table == nft.TableName {
			chains[ch.Name] = ch
		}
	}
	rules, err := readRules(sock)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		if ch := chains[r.chain]; ch != nil {
			ch.Rules = append(ch.Rules, r.Rule)
		}
	}
	return chains, nil
}

// decodeChain reads a chain header (without rules) and the name of its
// table.
func decodeChain(m netlink.Message) (ch *nft.Chain, table string, err error) {
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return nil, "", err
	}
	ad.ByteOrder = binary.BigEndian
	ch = &nft.Chain{}
	var typ string
	policy := uint32(1) // NF_ACCEPT
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CHAIN_TABLE:
			table = ad.String()
		case unix.NFTA_CHAIN_NAME:
			ch.Name = ad.String()
		case unix.NFTA_CHAIN_TYPE:
			typ = ad.String()
		case unix.NFTA_CHAIN_POLICY:
			policy = ad.Uint32()
		case unix.NFTA_CHAIN_HOOK:
			ch.Hook = &nft.Hook{}
			ad.Nested(func(h *netlink.AttributeDecoder) error {
				h.ByteOrder = binary.BigEndian
				for h.Next() {
					switch h.Type() {
					case unix.NFTA_HOOK_HOOKNUM:
						ch.Hook.Hook = nft.HookPoint(h.Uint32())
					case unix.NFTA_HOOK_PRIORITY:
						ch.Hook.Priority = int32(h.Uint32())
					}
				}
				return nil
			})
		}
	}
	if ch.Hook != nil {
		ch.Hook.Policy = "accept"
		if policy == 0 { // NF_DROP
			ch.Hook.Policy = "drop"
		}
		if typ != "filter" {
			ch.Hook.Type = typ
		}
	}
	return ch, table, ad.Err()
}
