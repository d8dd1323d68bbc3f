package probe

import (
	"context"
	"hash/crc32"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab/topo"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

func TestINITPacket(t *testing.T) {
	// RFC 3720 B.4: CRC32c of 32 zero bytes.
	if got := crc32.Checksum(make([]byte, 32), castagnoli); got != 0x8a9136aa {
		t.Fatalf("crc32c(32 zeros) = %#x, want 0x8a9136aa", got)
	}
	pkt := buildINIT(40000, 80, 0xdeadbeef)
	if len(pkt) != 32 {
		t.Fatalf("INIT packet is %d bytes, want 32", len(pkt))
	}
	src, dst, tag, ok := parseINIT(pkt)
	if !ok || src != 40000 || dst != 80 || tag != 0xdeadbeef {
		t.Errorf("parseINIT = %d %d %#x %v", src, dst, tag, ok)
	}
	pkt[20] ^= 1 // any change breaks the checksum
	if _, _, _, ok := parseINIT(pkt); ok {
		t.Error("parseINIT accepted a packet with a wrong checksum")
	}
}

// pair builds a one-node lab with two pods, a: 10.42.0.2 fd00:10:42::2 and
// b: 10.42.0.3 fd00:10:42::3.
func pair(t *testing.T) (a, b *netns.NS, aIPs, bIPs []netip.Addr) {
	t.Helper()
	testenv.RequireRoot(t)
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.42.0.0/24"), netip.MustParsePrefix("fd00:10:42::/64")}
	tp, err := topo.New(topo.Bridge, []topo.NodeSpec{{
		Name: "n", PodCIDRs: cidrs,
		Gateways: []netip.Addr{netip.MustParseAddr("10.42.0.1"), netip.MustParseAddr("fd00:10:42::1")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	aIPs = []netip.Addr{netip.MustParseAddr("10.42.0.2"), netip.MustParseAddr("fd00:10:42::2")}
	bIPs = []netip.Addr{netip.MustParseAddr("10.42.0.3"), netip.MustParseAddr("fd00:10:42::3")}
	pa, err := tp.AddPod(topo.PodSpec{Key: "x/a", Node: "n", IPs: aIPs})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := tp.AddPod(topo.PodSpec{Key: "x/b", Node: "n", IPs: bIPs})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	return pa.NS(), pb.NS(), aIPs, bIPs
}

var allPorts = []cluster.ContainerPort{
	{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 80, Protocol: corev1.ProtocolUDP},
	{Port: 80, Protocol: corev1.ProtocolSCTP}, {Port: 80, Protocol: corev1.ProtocolTCP}, // repeated: served once
}

func serve(t *testing.T, n *Net, ns *netns.NS, identity string, ips []netip.Addr) {
	t.Helper()
	s, err := n.Serve(ns, identity, ips, allPorts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

func probeAll(t *testing.T, n *Net, src *netns.NS, to string, ips []netip.Addr) []Result {
	t.Helper()
	var out []Result
	for _, ip := range ips {
		for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
			tg := Target{From: "x/a", To: to, IP: ip, Family: family(ip), Protocol: proto, Port: 80}
			r, err := n.Probe(context.Background(), src, tg, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

func family(ip netip.Addr) corev1.IPFamily {
	if ip.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

func TestProbesConnectAndBlock(t *testing.T) {
	a, b, _, bIPs := pair(t)
	n := NewNet()
	serve(t, n, b, "x/b", bIPs)
	for _, r := range probeAll(t, n, a, "x/b", bIPs) {
		if !r.Connected || r.Problem != "" {
			t.Errorf("%s %s: connected=%v problem=%q, want connected", r.Protocol, r.IP, r.Connected, r.Problem)
		}
		if (r.Method == MethodSCTPInit) != (r.Protocol == corev1.ProtocolSCTP) {
			t.Errorf("%s probe has method %q", r.Protocol, r.Method)
		}
	}

	nft := testenv.RequireBinary(t, "nft", "nftables")
	if out, err := b.Command(nft, "add table inet t; add chain inet t in { type filter hook input priority 0; }; add rule inet t in meta l4proto { tcp, udp, sctp } drop"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	start := time.Now()
	for _, r := range probeAll(t, n, a, "x/b", bIPs) {
		if r.Connected {
			t.Errorf("%s %s: connected through a drop rule", r.Protocol, r.IP)
		}
	}
	t.Logf("6 blocked probes with a 500ms timeout took %v", time.Since(start))
}

func TestProbeNoticesWrongAnswer(t *testing.T) {
	a, b, _, bIPs := pair(t)
	n := NewNet()
	serve(t, n, b, "y/impostor", bIPs)
	for _, r := range probeAll(t, n, a, "x/b", bIPs) {
		if r.Protocol == corev1.ProtocolSCTP {
			continue // an INIT carries no identity
		}
		if r.Connected || r.Problem == "" {
			t.Errorf("%s %s: connected=%v problem=%q, want a problem naming the impostor", r.Protocol, r.IP, r.Connected, r.Problem)
		}
	}
}

func TestProbeUnservedPort(t *testing.T) {
	a, b, _, bIPs := pair(t)
	n := NewNet()
	serve(t, n, b, "x/b", bIPs)
	for _, ip := range bIPs {
		for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP} {
			tg := Target{From: "x/a", To: "x/b", IP: ip, Family: family(ip), Protocol: proto, Port: 81}
			r, err := n.Probe(context.Background(), a, tg, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if r.Connected {
				t.Errorf("%s %s port 81 (not served): connected", proto, ip)
			}
		}
	}
}

// TestSCTPInitPassesConntrack shows the crafted INIT is a valid new SCTP
// connection to conntrack (checksum and tags right), while the same packet
// with a broken checksum is invalid: so policies matching ct state see lab
// SCTP probes the way they would see a real SCTP client.
func TestSCTPInitPassesConntrack(t *testing.T) {
	a, b, _, bIPs := pair(t)
	nft := testenv.RequireBinary(t, "nft", "nftables")
	n := NewNet()
	serve(t, n, b, "x/b", bIPs)
	rules := `add table inet t
add chain inet t pre { type filter hook prerouting priority 0; }
add rule inet t pre meta l4proto sctp ct state new counter comment "new"
add rule inet t pre meta l4proto sctp ct state invalid counter comment "invalid"`
	if out, err := b.Command(nft, rules); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	for _, ip := range bIPs {
		tg := Target{From: "x/a", To: "x/b", IP: ip, Family: family(ip), Protocol: corev1.ProtocolSCTP, Port: 80}
		r, err := n.Probe(context.Background(), a, tg, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Connected {
			t.Errorf("SCTP INIT to %s not seen", ip)
		}
	}
	if newPkts, invalid := counters(t, b, nft); newPkts < 2 || invalid != 0 {
		t.Fatalf("conntrack counted %d new and %d invalid SCTP packets, want >= 2 new and 0 invalid", newPkts, invalid)
	}

	// The same INIT with a wrong checksum: conntrack must call it invalid.
	bad := buildINIT(40000, 80, 7)
	bad[8] ^= 0xff
	if err := a.Do(func() error {
		c, err := net.DialIP("ip4:132", nil, &net.IPAddr{IP: bIPs[0].AsSlice()})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(bad)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, invalid := counters(t, b, nft); invalid != 1 {
		t.Errorf("a broken checksum gave %d invalid packets, want 1: conntrack does not check it here, so the test above proves nothing", invalid)
	}
}

func counters(t *testing.T, ns *netns.NS, nft string) (newPkts, invalid int) {
	t.Helper()
	out, err := ns.Command(nft, "list chain inet t pre")
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	re := regexp.MustCompile(`counter packets (\d+) bytes \d+ comment "(\w+)"`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.Atoi(m[1])
		if m[2] == "new" {
			newPkts = v
		} else {
			invalid = v
		}
	}
	return newPkts, invalid
}
