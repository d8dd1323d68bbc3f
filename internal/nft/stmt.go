package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nftext"
)

// The few rule pieces kube-fence uses, each built once here with the exact
// expressions nft 1.0.6 generates for the same text, so a table loaded with
// `nft -f` from Text and one programmed over netlink are identical.

// stmt is one part of a rule: its expressions and its nft text.
type stmt struct {
	exprs []expr.Any
	text  string
}

// rule joins statements into a rule.
func rule(parts ...stmt) Rule {
	var r Rule
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		r.Exprs = append(r.Exprs, p.exprs...)
		texts = append(texts, p.text)
	}
	r.Text = strings.Join(texts, " ")
	return r
}

// seq joins statements into one, as rule does.
func seq(parts ...stmt) stmt {
	r := rule(parts...)
	return stmt{exprs: r.Exprs, text: r.Text}
}

// withComment attaches a comment, which nft limits to 128 bytes.
func (r Rule) withComment(c string) Rule {
	r.Comment = shortComment(c)
	return r
}

// shortComment cuts a comment to what nft accepts (128 bytes with the
// terminating NUL), so the text loads and the kernel gives back what we
// sent.
func shortComment(c string) string {
	if len(c) > 127 {
		c = c[:124] + "..."
	}
	return c
}

// addrField names an IP header address field.
type addrField struct {
	family int  // 4 or 6
	src    bool // saddr, else daddr
}

func (f addrField) String() string {
	proto := "ip"
	if f.family == 6 {
		proto = "ip6"
	}
	if f.src {
		return proto + " saddr"
	}
	return proto + " daddr"
}

// load puts the address in register 1, behind the nfproto check nft adds in
// inet tables.
func (f addrField) load() []expr.Any {
	nfproto, off, n := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if f.src {
		off = 12
	}
	if f.family == 6 {
		nfproto, off, n = unix.NFPROTO_IPV6, 24, 16
		if f.src {
			off = 8
		}
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
}

// inSet matches when the address is in the named set: `ip saddr @set`.
func (f addrField) inSet(set string) stmt {
	return stmt{
		exprs: append(f.load(), &expr.Lookup{SourceRegister: 1, SetName: set}),
		text:  fmt.Sprintf("%s @%s", f, set),
	}
}

// vmap jumps through the verdict map keyed by the address: `ip daddr vmap @map`.
func (f addrField) vmap(m string) stmt {
	return stmt{
		exprs: append(f.load(), &expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: m}),
		text:  fmt.Sprintf("%s vmap @%s", f, m),
	}
}

var (
	ipSaddr  = addrField{family: 4, src: true}
	ipDaddr  = addrField{family: 4}
	ip6Saddr = addrField{family: 6, src: true}
	ip6Daddr = addrField{family: 6}
)

// protoPortVmap dispatches on `meta l4proto . th dport`. The byteorder
// expression is a no-op nft emits for the one-byte protocol; it is kept so
// both ways of loading the table give identical rules.
func protoPortVmap(m string) stmt {
	return stmt{
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 1, Size: 2},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: m},
		},
		text: fmt.Sprintf("meta l4proto . th dport vmap @%s", m),
	}
}

// ctEstablishedRelated matches packets of connections conntrack already knows.
func ctEstablishedRelated() stmt {
	return stmt{
		exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{
				SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0),
			},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		},
		text: "ct state established,related",
	}
}

// tcpMidstream matches a TCP packet that conntrack saw no start of: state
// new, yet not a bare SYN (with nf_conntrack_tcp_loose, the kernel's
// default, such a packet opens an entry in whatever direction it travels).
// nft 1.0.6 prints it as `ct state new tcp flags != syn / fin,syn,rst,ack`.
func tcpMidstream() stmt {
	return stmt{
		exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{
				SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW),
				Xor:  binaryutil.NativeEndian.PutUint32(0),
			},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x17}, Xor: []byte{0}}, // fin|syn|rst|ack
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x02}},                                 // syn
		},
		text: "ct state new tcp flags & (fin|syn|rst|ack) != syn",
	}
}

// icmpv6NeighbourDiscovery matches router and neighbour solicitations and
// advertisements (types 133 to 136). Without them IPv6 stops working between
// pods on a bridge, so no policy may drop them.
func icmpv6NeighbourDiscovery() stmt {
	return stmt{
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{133}},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{136}},
		},
		text: "icmpv6 type 133-136",
	}
}

func verdict(kind expr.VerdictKind, chain string) stmt {
	return stmt{exprs: []expr.Any{&expr.Verdict{Kind: kind, Chain: chain}}, text: verdictText(Verdict{Kind: kind, Chain: chain})}
}

var (
	accept = verdict(expr.VerdictAccept, "")
	drop   = verdict(expr.VerdictDrop, "")
	ret    = verdict(expr.VerdictReturn, "")
)

func jump(chain string) stmt { return verdict(expr.VerdictJump, chain) }

func verdictText(v Verdict) string {
	return nftext.Verdict(&expr.Verdict{Kind: v.Kind, Chain: v.Chain})
}

// limitOver matches once more than rate packets a second (and burst more
// at once) came through: `limit rate over 100/second burst 100 packets`.
func limitOver(rate, burst uint32) stmt {
	return stmt{
		exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Over: true, Unit: expr.LimitTimeSecond, Burst: burst}},
		text:  fmt.Sprintf("limit rate over %d/second burst %d packets", rate, burst),
	}
}

// counter counts the packets and bytes that reach it. Its values change
// with traffic, so RuleKey leaves them out.
func counter() stmt {
	return stmt{exprs: []expr.Any{&expr.Counter{}}, text: "counter"}
}

// nflog sends the packet to the NFLOG group with a prefix:
// `log prefix "kube-fence deny egress" group 1617`.
func nflog(prefix string, group uint16) stmt {
	return stmt{
		exprs: []expr.Any{&expr.Log{
			Key:   1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP,
			Group: group,
			Data:  []byte(prefix),
		}},
		text: fmt.Sprintf("log prefix %q group %d", prefix, group),
	}
}

// nfproto matches the packet's address family: `meta nfproto ipv4`.
func nfproto(family byte) stmt {
	name := "ipv4"
	if family == unix.NFPROTO_IPV6 {
		name = "ipv6"
	}
	return stmt{
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		},
		text: "meta nfproto " + name,
	}
}
