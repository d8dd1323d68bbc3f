package nftext

import (
	"encoding/binary"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

func le32(v uint32) []byte { b := make([]byte, 4); binary.LittleEndian.PutUint32(b, v); return b }
func be16(v uint16) []byte { b := make([]byte, 2); binary.BigEndian.PutUint16(b, v); return b }

func ifname(s string) []byte { b := make([]byte, 16); copy(b, s); return b }

var accept = &expr.Verdict{Kind: expr.VerdictAccept}

// ruleCases are rules and their text; the fuzzer starts from them too.
var ruleCases = func() []struct {
	name  string
	o     Options
	exprs []expr.Any
	want  string
} {
	ip := Options{Family: unix.NFPROTO_IPV4}
	inet := Options{Family: unix.NFPROTO_INET}
	return []struct {
		name  string
		o     Options
		exprs []expr.Any
		want  string
	}{
		{"ct state set", ip, []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le32(6), Xor: le32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(0)}, accept,
		}, "ct state established,related accept"},
		{"ct state not", ip, []expr.Any{
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: le32(2)}, accept,
		}, "ct state != established accept"},
		{"ct mark masked", ip, []expr.Any{
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: le32(0xff), Xor: le32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: le32(0x10)}, accept,
		}, "ct mark & 0x000000ff == 0x00000010 accept"},
		{"fib daddr type local", ip, []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: le32(2)}, accept,
		}, "fib daddr type local accept"},
		{"fib oif missing", ip, []expr.Any{
			&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}, "fib saddr . iif oif missing drop"},
		{"meta skuid", ip, []expr.Any{
			&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: le32(0)}, accept,
		}, "meta skuid 0 accept"},
		{"iifname", ip, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("eth0")}, accept,
		}, `iifname "eth0" accept`},
		{"iifname wildcard", ip, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("eth")}, accept,
		}, `iifname "eth*" accept`},
		{"tcp dport hides its dependency", ip, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(80)}, accept,
		}, "tcp dport 80 accept"},
		{"port range", ip, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: be16(1000)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: be16(2000)}, accept,
		}, "tcp dport 1000-2000 accept"},
		{"saddr in named set", ip, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: "myset"}, accept,
		}, "ip saddr @myset accept"},
		{"saddr prefix loaded partially", ip, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10}}, accept,
		}, "ip saddr 10.0.0.0/8 accept"},
		{"daddr prefix with mask", ip, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 240, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 1, 16, 0}}, accept,
		}, "ip daddr != 10.1.16.0/20 accept"},
		{"dscp", ip, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 1, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xfc}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0xb8}}, accept,
		}, "ip dscp ef accept"},
		{"inet hides nfproto", inet, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 0, 0, 1}},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: "FOO"},
		}, "ip saddr 10.0.0.1 jump FOO"},
		{"rt mtu", ip, []expr.Any{
			&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x78, 0x05, 0, 0}}, accept,
		}, "rt mtu 1400 accept"},
		{"meta mark set", ip, []expr.Any{
			&expr.Immediate{Register: 1, Data: le32(1)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}, "meta mark set 0x00000001"},
		{"counter limit log", ip, []expr.Any{
			&expr.Counter{Packets: 1, Bytes: 2},
			&expr.Limit{Type: expr.LimitTypePkts, Rate: 5, Unit: 1, Burst: 5},
			&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: 2}, accept,
		}, "counter packets 1 bytes 2 limit rate 5/second log group 2 accept"},
		{"quota and reject", ip, []expr.Any{
			&expr.Quota{Bytes: 10 << 20, Over: true},
			&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3},
		}, "quota over 10 mbytes reject"},
		{"masquerade", ip, []expr.Any{&expr.Masq{}}, "masquerade"},
		{"snat", ip, []expr.Any{
			&expr.Immediate{Register: 1, Data: []byte{10, 0, 0, 1}},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		}, "snat to 10.0.0.1"},
		{"xt match and target", ip, []expr.Any{
			&expr.Match{Name: "conntrack", Rev: 3, Info: &xt.ConntrackMtinfo3{}},
			&expr.Counter{},
			&expr.Target{Name: "LOG"},
		}, `xt match "conntrack" counter packets 0 bytes 0 xt target "LOG"`},
		{"undecoded is shown, not dropped", ip, []expr.Any{
			&Undecoded{Name: "osf"}, accept,
		}, "[osf] accept"},
	}
}()

func TestRule(t *testing.T) {
	for _, c := range ruleCases {
		if got := Rule(c.exprs, c.o); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestAnonymousSetInline(t *testing.T) {
	o := Options{Family: unix.NFPROTO_IPV4, AnonSet: func(name string) ([]SetElement, bool) {
		return []SetElement{{Key: be16(443)}, {Key: be16(80)}}, name == "__set0"
	}}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: "__set0"}, accept,
	}
	if got, want := Rule(exprs, o), "tcp dport { 80, 443 } accept"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFieldWrite(t *testing.T) {
	ip := Options{Family: unix.NFPROTO_IPV4}
	exprs := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0x03}, Xor: []byte{0x00, 0xb8}},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
	}
	if got := Rule(exprs, ip); got != "ip dscp set ef" {
		t.Errorf("dscp write: %q", got)
	}
	exprs = []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x00, 0xff}, Xor: []byte{0x40, 0x00}},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 2},
	}
	if got := Rule(exprs, ip); got != "ip ttl set 64" {
		t.Errorf("ttl write: %q", got)
	}
}
