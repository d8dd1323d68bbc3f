package droplog

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func ipv4(proto uint8, src, dst string, fragOffset uint16, transport ...byte) []byte {
	p := make([]byte, 20, 20+len(transport))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[6:8], fragOffset)
	p[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	return append(p, transport...)
}

func ipv6(next uint8, src, dst string, rest ...byte) []byte {
	p := make([]byte, 40, 40+len(rest))
	p[0] = 0x60
	p[6] = next
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	return append(p, rest...)
}

// ports is the start of a TCP, UDP or SCTP header.
func ports(src, dst uint16) []byte {
	return []byte{byte(src >> 8), byte(src), byte(dst >> 8), byte(dst)}
}

func TestDecode(t *testing.T) {
	at := time.Unix(1700000000, 0)
	hopByHopThenTCP := append([]byte{6, 0, 0, 0, 0, 0, 0, 0}, ports(40000, 443)...)
	firstFragment := append([]byte{17, 0, 0, 1, 0, 0, 0, 1}, ports(5353, 53)...)
	laterFragment := append([]byte{17, 0, 0x05, 0x01, 0, 0, 0, 1}, ports(1, 2)...)
	cases := []struct {
		name, prefix string
		packet       []byte
		want         Record
		wantErr      bool
	}{
		{"IPv4 TCP, egress", "kube-fence deny egress", ipv4(6, "10.42.0.2", "10.42.0.3", 0, ports(40000, 80)...),
			Record{Side: SideEgress, Protocol: 6, Src: addr("10.42.0.2"), Dst: addr("10.42.0.3"), SrcPort: 40000, DstPort: 80}, false},
		{"IPv4 UDP, ingress, audit", "kube-fence would-deny ingress", ipv4(17, "10.42.0.2", "10.42.0.3", 0, ports(1000, 53)...),
			Record{Side: SideIngress, Audit: true, Protocol: 17, Src: addr("10.42.0.2"), Dst: addr("10.42.0.3"), SrcPort: 1000, DstPort: 53}, false},
		{"IPv4 SCTP, unknown address", "kube-fence deny unknown-address", ipv4(132, "10.42.0.99", "10.42.0.3", 0, ports(7, 9)...),
			Record{Side: SideUnknownAddress, Protocol: 132, Src: addr("10.42.0.99"), Dst: addr("10.42.0.3"), SrcPort: 7, DstPort: 9}, false},
		{"IPv4 later fragment has no ports", "kube-fence deny egress", ipv4(17, "10.0.0.1", "10.0.0.2", 0x00b9, ports(1, 2)...),
			Record{Side: SideEgress, Protocol: 17, Src: addr("10.0.0.1"), Dst: addr("10.0.0.2")}, false},
		{"IPv4 truncated transport", "kube-fence deny egress", ipv4(6, "10.0.0.1", "10.0.0.2", 0, 1, 2),
			Record{Side: SideEgress, Protocol: 6, Src: addr("10.0.0.1"), Dst: addr("10.0.0.2")}, false},
		{"IPv4 ICMP has no ports", "kube-fence deny ingress", ipv4(1, "10.0.0.1", "10.0.0.2", 0, 8, 0, 0, 0),
			Record{Side: SideIngress, Protocol: 1, Src: addr("10.0.0.1"), Dst: addr("10.0.0.2")}, false},
		{"IPv6 TCP", "kube-fence deny ingress", ipv6(6, "fd00::2", "fd00::3", ports(40000, 8080)...),
			Record{Side: SideIngress, Protocol: 6, Src: addr("fd00::2"), Dst: addr("fd00::3"), SrcPort: 40000, DstPort: 8080}, false},
		{"IPv6 hop-by-hop then TCP", "kube-fence deny egress", ipv6(0, "fd00::2", "fd00::3", hopByHopThenTCP...),
			Record{Side: SideEgress, Protocol: 6, Src: addr("fd00::2"), Dst: addr("fd00::3"), SrcPort: 40000, DstPort: 443}, false},
		{"IPv6 first fragment", "kube-fence deny egress", ipv6(44, "fd00::2", "fd00::3", firstFragment...),
			Record{Side: SideEgress, Protocol: 17, Src: addr("fd00::2"), Dst: addr("fd00::3"), SrcPort: 5353, DstPort: 53}, false},
		{"IPv6 later fragment", "kube-fence deny egress", ipv6(44, "fd00::2", "fd00::3", laterFragment...),
			Record{Side: SideEgress, Protocol: 17, Src: addr("fd00::2"), Dst: addr("fd00::3")}, false},
		{"IPv6 truncated extension header", "kube-fence deny egress", ipv6(60, "fd00::2", "fd00::3", 6, 3),
			Record{Side: SideEgress, Protocol: 60, Src: addr("fd00::2"), Dst: addr("fd00::3")}, false},
		{"another program's prefix", "netbird drop", ipv4(6, "10.0.0.1", "10.0.0.2", 0), Record{}, true},
		{"unknown side", "kube-fence deny sideways", ipv4(6, "10.0.0.1", "10.0.0.2", 0), Record{}, true},
		{"unknown verdict", "kube-fence allow egress", ipv4(6, "10.0.0.1", "10.0.0.2", 0), Record{}, true},
		{"short IPv4", "kube-fence deny egress", []byte{0x45, 0}, Record{}, true},
		{"bad IPv4 header length", "kube-fence deny egress", append([]byte{0x4f}, make([]byte, 19)...), Record{}, true},
		{"short IPv6", "kube-fence deny egress", []byte{0x60, 0, 0}, Record{}, true},
		{"not IP", "kube-fence deny egress", []byte{0x20, 0, 0, 0}, Record{}, true},
		{"empty", "kube-fence deny egress", nil, Record{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.prefix, c.packet, at)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want error: %v", err, c.wantErr)
			}
			if c.wantErr {
				return
			}
			c.want.Time = at
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestPrefixRoundTrip(t *testing.T) {
	for _, side := range []Side{SideEgress, SideIngress, SideUnknownAddress} {
		for _, audit := range []bool{false, true} {
			p := Prefix(side, audit)
			if len(p) > 127 {
				t.Errorf("%q is longer than the kernel's NFLOG prefix", p)
			}
			s, a, err := ParsePrefix(p)
			if err != nil || s != side || a != audit {
				t.Errorf("ParsePrefix(%q) = %v %v %v", p, s, a, err)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("kube-fence deny egress", ipv4(6, "10.42.0.2", "10.42.0.3", 0, ports(1, 2)...))
	f.Add("kube-fence would-deny ingress", ipv6(0, "fd00::2", "fd00::3", 6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2))
	f.Fuzz(func(t *testing.T, prefix string, packet []byte) {
		r, err := Decode(prefix, packet, time.Time{})
		if err == nil && r.Src.Is4() != r.Dst.Is4() {
			t.Fatalf("families differ: %+v", r)
		}
	})
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
