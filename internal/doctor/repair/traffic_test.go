package repair

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// lab is two hosts, a and b, on either side of a router r.
type lab struct {
	a, r, b *netns.NS
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{}
	for _, p := range []**netns.NS{&l.a, &l.r, &l.b} {
		ns, err := netns.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		*p = ns
	}
	l.wire(t, l.a, "10.0.1.2/24", "ra", "10.0.1.1/24", "10.0.1.1")
	l.wire(t, l.b, "10.0.2.2/24", "rb", "10.0.2.1/24", "10.0.2.1")
	if err := l.r.WriteSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	return l
}

// wire connects host h to the router with a veth pair and a default route.
func (l *lab) wire(t *testing.T, h *netns.NS, hostAddr, routerIf, routerAddr, gw string) {
	t.Helper()
	rh, err := l.r.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer rh.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: routerIf}, PeerName: "eth0", PeerNamespace: netlink.NsFd(h.FD())}
	if err := rh.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s: %v", routerIf, err)
	}
	link, err := rh.LinkByName(routerIf)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr(routerAddr)
	if err := rh.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	if err := rh.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	hh, err := h.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	hl, err := hh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	haddr, _ := netlink.ParseAddr(hostAddr)
	if err := hh.AddrAdd(hl, haddr); err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	if err := hh.RouteAdd(&netlink.Route{LinkIndex: hl.Attrs().Index, Gw: net.ParseIP(gw)}); err != nil {
		t.Fatal(err)
	}
}

// listen serves TCP in ns on addr and returns a stop function.
func listen(t *testing.T, ns *netns.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
}

// connects reports whether a TCP connection from ns to addr completes and
// returns data.
func connects(ns *netns.NS, addr string) bool {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 700*time.Millisecond)
		return err
	}); err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	buf := make([]byte, 2)
	n, _ := c.Read(buf)
	return n == 2
}

func (l *lab) reach() string {
	return fmt.Sprintf("a->b %v, b->a %v", connects(l.a, "10.0.2.2:8080"), connects(l.b, "10.0.1.2:8080"))
}

// TestFixKeepsPacketsTheSame: the router forwards with a policy-like chain,
// a native `ct state established,related accept` first and new connections
// from b dropped. a can open a connection to b and b cannot open one to a,
// before and after the fix; only iptables' view changes.
func TestFixKeepsPacketsTheSame(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	l := newLab(t)
	listen(t, l.b, "10.0.2.2:8080")
	listen(t, l.a, "10.0.1.2:8080")
	const want = "a->b true, b->a false"
	// Links need a moment to come up; wait until both ways work.
	got := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if got = l.reach(); got == "a->b true, b->a true" {
			break
		}
	}
	if got != "a->b true, b->a true" {
		t.Fatalf("without rules: %s, want both ways open", got)
	}
	run(t, l.r, "iptables", "-A", "FORWARD", "-i", "rb", "-j", "DROP")
	run(t, l.r, "iptables", append([]string{"-A", "FORWARD"}, sentinel...)...)
	if got := l.reach(); got != "a->b false, b->a false" {
		t.Fatalf("without the ct rule: %s, want replies from b dropped too", got)
	}
	run(t, l.r, "nft", "insert rule ip filter FORWARD ct state established,related accept")
	if got := l.reach(); got != want {
		t.Fatalf("before the fix: %s, want %s", got, want)
	}
	if code, _ := exitStatus(l.r, "iptables", append([]string{"-C", "FORWARD"}, sentinel...)...); code != 3 {
		t.Fatalf("before the fix iptables -C exits %d, want 3", code)
	}
	c, rs := readRules(t, l.r)
	props, _ := Plan(rs)
	if len(props) != 1 {
		t.Fatalf("plan: %d proposals, want 1", len(props))
	}
	if err := Fix(c, rs, props, filepath.Join(t.TempDir(), "rb.json"), ""); err != nil {
		t.Fatal(err)
	}
	if got := l.reach(); got != want {
		t.Errorf("after the fix: %s, want %s", got, want)
	}
	if code, out := exitStatus(l.r, "iptables", append([]string{"-C", "FORWARD"}, sentinel...)...); code != 0 {
		t.Errorf("after the fix iptables -C exits %d: %s", code, out)
	}
}
