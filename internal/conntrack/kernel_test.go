package conntrack

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// pair is a client and a server namespace joined by a veth, both families.
type pair struct {
	client, server *netns.NS
}

var (
	clientAddrs = []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("fd00:99::1")}
	serverAddrs = []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("fd00:99::2")}
)

func newPair(t testing.TB) *pair {
	t.Helper()
	testenv.RequireRoot(t)
	p := &pair{}
	for _, ns := range []**netns.NS{&p.client, &p.server} {
		n, err := netns.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		*ns = n
	}
	ch, err := p.client.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(p.server.FD())}
	if err := ch.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	sh, err := p.server.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	for _, side := range []struct {
		h     *netlink.Handle
		addrs []netip.Addr
	}{{ch, clientAddrs}, {sh, serverAddrs}} {
		link, err := side.h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range side.addrs {
			bits := 24
			if a.Is6() {
				bits = 64
			}
			pfx := netip.PrefixFrom(a, bits)
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}, Flags: unix.IFA_F_NODAD}
			if err := side.h.AddrAdd(link, addr); err != nil {
				t.Fatalf("add %s: %v", pfx, err)
			}
		}
		if err := side.h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// nft runs an nft script in the server namespace: the test's stand-in for
// the agent's table.
func (p *pair) nft(t testing.TB, script string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "nft")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(script)
	f.Close()
	if out, err := p.server.Command("nft", "-f", f.Name()); err != nil {
		t.Fatalf("nft -f: %v: %s\n%s", err, out, script)
	}
}

// table accepts everything until rules are added; established packets are
// accepted first, as in the agent's table.
const table = `
table inet cttest {
	chain in {
		type filter hook input priority 0; policy accept;
		ct state established,related accept
	}
	chain out {
		type filter hook output priority 0; policy accept;
		ct state established,related accept
	}
}
`

// deny is the new policy: ports 8081 and 9091 are denied to new flows.
// Packets of a TCP connection whose entry is gone are new but carry no SYN:
// they are dropped in both directions, so the server speaking first cannot
// pick the connection up again the other way round.
const deny = `
add rule inet cttest in tcp dport 8081 drop
add rule inet cttest in udp dport 9091 drop
add rule inet cttest in ct state new tcp flags & (fin|syn|rst|ack) != syn drop
add rule inet cttest out ct state new tcp flags & (fin|syn|rst|ack) != syn drop
`

func allowedNow(f Flow) bool { return f.Dst.Port() != 8081 && f.Dst.Port() != 9091 }

func (p *pair) listenTCP(t testing.TB, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := p.server.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialTCP connects from the client to the server's address of family i and
// returns both ends.
func (p *pair) dialTCP(t testing.TB, ln net.Listener, i, port int) (client, server net.Conn) {
	t.Helper()
	if err := p.client.Do(func() error {
		var err error
		client, err = net.DialTimeout("tcp", netip.AddrPortFrom(serverAddrs[i], uint16(port)).String(), 3*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// carries reports whether b bytes written on from arrive on to within d.
func carries(from, to net.Conn, msg string, d time.Duration) bool {
	if _, err := from.Write([]byte(msg)); err != nil {
		return false
	}
	to.SetReadDeadline(time.Now().Add(d))
	defer to.SetReadDeadline(time.Time{})
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(to, buf)
	return err == nil && string(buf) == msg
}

type udpFlow struct {
	client *net.UDPConn
	server *net.UDPConn
}

func (p *pair) udp(t testing.TB, i, port int) udpFlow {
	t.Helper()
	var u udpFlow
	if err := p.server.Do(func() error {
		var err error
		u.server, err = net.ListenUDP("udp", &net.UDPAddr{IP: serverAddrs[i].AsSlice(), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Do(func() error {
		var err error
		u.client, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(serverAddrs[i], uint16(port))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.client.Close(); u.server.Close() })
	// A request and its reply: the entry has seen both directions.
	if got := u.exchange(1, time.Second); got != 1 {
		t.Fatalf("udp %s: the first datagram did not arrive", u.client.RemoteAddr())
	}
	u.server.SetReadDeadline(time.Time{})
	return u
}

// exchange sends n numbered datagrams client to server, answering each,
// and returns how many arrived in order within d.
func (u udpFlow) exchange(n int, d time.Duration) int {
	got := 0
	buf := make([]byte, 64)
	for i := range n {
		msg := fmt.Sprintf("datagram %d", i)
		if _, err := u.client.Write([]byte(msg)); err != nil {
			return got
		}
		u.server.SetReadDeadline(time.Now().Add(d))
		k, from, err := u.server.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:k]) != msg {
			return got
		}
		got++
		u.server.WriteToUDPAddrPort(buf[:k], from)
		u.client.SetReadDeadline(time.Now().Add(d))
		if _, err := u.client.Read(buf); err != nil {
			return got
		}
	}
	return got
}

// TestCutDeniedKeepAllowed: connections open before a policy narrows;
// after Cut, the denied TCP connections carry nothing in either direction
// and the denied UDP flows nothing, while the allowed TCP connections keep
// streaming without a lost byte through the cut and the allowed UDP flows
// lose no datagram. Both families.
func TestCutDeniedKeepAllowed(t *testing.T) {
	testenv.RequireBinary(t, "nft", "nftables")
	p := newPair(t)
	p.nft(t, table)
	allowedLn, deniedLn := p.listenTCP(t, 8080), p.listenTCP(t, 8081)
	type tcpPair struct{ client, server net.Conn }
	var allowed, denied []tcpPair
	var allowedUDP, deniedUDP []udpFlow
	for i := range serverAddrs {
		c, s := p.dialTCP(t, allowedLn, i, 8080)
		allowed = append(allowed, tcpPair{c, s})
		c, s = p.dialTCP(t, deniedLn, i, 8081)
		denied = append(denied, tcpPair{c, s})
		allowedUDP = append(allowedUDP, p.udp(t, i, 9090))
		deniedUDP = append(deniedUDP, p.udp(t, i, 9091))
	}
	p.nft(t, deny)
	// Without a cut, the policy stops new flows only (today's behaviour):
	// this is what the cut changes.
	for _, d := range denied {
		if !carries(d.client, d.server, "before", 2*time.Second) {
			t.Fatalf("denied connection %s stopped before the cut: the test table drops more than new flows", d.client.LocalAddr())
		}
	}

	// Stream on the allowed connections while the cut runs.
	const streamBytes = 8 << 20
	streams := make(chan error, len(allowed))
	for _, a := range allowed {
		go func() { streams <- stream(a.client, a.server, streamBytes) }()
	}
	c, err := Dial(p.server.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	listed, err := c.Flows()
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Cut(allowedNow, nil)
	if err != nil {
		t.Fatalf("cut: %v", err)
	}
	for range allowed {
		if err := <-streams; err != nil {
			t.Errorf("allowed connection: %v", err)
		}
	}
	t.Logf("cut %d of %d judged entries (%d listed) in %v", len(res.Cut), res.Judged, res.Entries, res.Took)

	var want []Flow
	for i := range serverAddrs {
		want = append(want,
			Flow{plan.TCP, addrPort(denied[i].client.LocalAddr()), netip.AddrPortFrom(serverAddrs[i], 8081)},
			Flow{plan.UDP, addrPort(deniedUDP[i].client.LocalAddr()), netip.AddrPortFrom(serverAddrs[i], 9091)})
	}
	if !sameFlows(res.Cut, want) {
		t.Errorf("cut %v, want %v", res.Cut, want)
	}
	for i := range serverAddrs {
		want = append(want,
			Flow{plan.TCP, addrPort(allowed[i].client.LocalAddr()), netip.AddrPortFrom(serverAddrs[i], 8080)},
			Flow{plan.UDP, addrPort(allowedUDP[i].client.LocalAddr()), netip.AddrPortFrom(serverAddrs[i], 9090)})
	}
	if !sameFlows(listed, want) {
		t.Errorf("Flows listed %v before the cut, want the test's 8 flows %v", listed, want)
	}
	for _, d := range denied {
		// The server speaking first must not revive it the other way round.
		if carries(d.server, d.client, "server first", 1500*time.Millisecond) {
			t.Errorf("denied connection %s: the server's data still arrives after the cut", d.client.LocalAddr())
		}
		if carries(d.client, d.server, "client", 1500*time.Millisecond) {
			t.Errorf("denied connection %s: the client's data still arrives after the cut", d.client.LocalAddr())
		}
	}
	for _, a := range allowed {
		if !carries(a.client, a.server, "still here", 2*time.Second) || !carries(a.server, a.client, "and back", 2*time.Second) {
			t.Errorf("allowed connection %s stopped after the cut", a.client.LocalAddr())
		}
	}
	for _, u := range allowedUDP {
		if got := u.exchange(100, time.Second); got != 100 {
			t.Errorf("allowed udp %s: %d of 100 datagrams and replies came through after the cut", u.client.LocalAddr(), got)
		}
	}
	for _, u := range deniedUDP {
		if got := u.exchange(1, time.Second); got != 0 {
			t.Errorf("denied udp %s: a datagram still arrives after the cut", u.client.LocalAddr())
		}
	}
}

// stream writes n bytes of a counting pattern on w and checks that r reads
// exactly them, in order.
func stream(w, r net.Conn, n int) error {
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for sent := 0; sent < n; sent += len(buf) {
			for i := range buf {
				buf[i] = byte((sent + i) % 251)
			}
			if _, err := w.Write(buf); err != nil {
				errc <- fmt.Errorf("write at byte %d: %w", sent, err)
				return
			}
		}
		errc <- nil
	}()
	r.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer r.SetReadDeadline(time.Time{})
	buf := make([]byte, 32<<10)
	want := make([]byte, len(buf))
	for got := 0; got < n; {
		k, err := r.Read(buf)
		if err != nil {
			w.Close() // unblocks the writer
			return fmt.Errorf("read after %d of %d bytes: %w", got, n, err)
		}
		for i := range k {
			want[i] = byte((got + i) % 251)
		}
		if !bytes.Equal(buf[:k], want[:k]) {
			return fmt.Errorf("bytes %d-%d differ from what was sent", got, got+k)
		}
		got += k
	}
	return <-errc
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic(fmt.Sprintf("not an IP address: %v", a))
}

func sameFlows(got, want []Flow) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[Flow]int{}
	for _, f := range got {
		seen[Flow{f.Protocol, netip.AddrPortFrom(f.Src.Addr().Unmap(), f.Src.Port()), f.Dst}]++
	}
	for _, f := range want {
		f.Src = netip.AddrPortFrom(f.Src.Addr().Unmap(), f.Src.Port())
		if seen[f] == 0 {
			return false
		}
		seen[f]--
	}
	return true
}

// heldLocker counts the times it was taken and says whether it is held.
type heldLocker struct {
	mu   sync.Mutex
	n    int
	held bool
}

func (l *heldLocker) Lock()   { l.mu.Lock(); l.n++; l.held = true }
func (l *heldLocker) Unlock() { l.held = false; l.mu.Unlock() }

// TestCutJudgesAgainUnderTheGuard: a verdict that changes between the
// listing and the deletions (a newer plan committed meanwhile) is asked
// again, with the guard held, before each deletion; entries it allows by
// then are spared and stay in the table.
func TestCutJudgesAgainUnderTheGuard(t *testing.T) {
	p := newPair(t)
	p.nft(t, table)
	c, err := Dial(p.server.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 20
	fill(t, c, n) // n entries to 8081 (half TCP, half UDP), n to 8080
	guard := &heldLocker{}
	res, err := c.Cut(func(f Flow) bool {
		if f.Dst.Port() != 8081 {
			return true
		}
		// The listing denies every 8081 entry; by the deletions a newer
		// verdict allows UDP again.
		return guard.held && f.Protocol == plan.UDP
	}, guard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cut) != n/2 || res.Spared != n/2 || guard.n != n {
		t.Fatalf("cut %d, spared %d, guard taken %d times; want %d, %d, %d", len(res.Cut), res.Spared, guard.n, n/2, n/2, n)
	}
	for _, f := range res.Cut {
		if f.Protocol != plan.TCP {
			t.Errorf("cut %s, which the verdict at its deletion allowed", f)
		}
	}
	left, err := c.Flows()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2*n-n/2 {
		t.Errorf("%d entries left, want %d (the allowed and the spared)", len(left), 2*n-n/2)
	}
}
