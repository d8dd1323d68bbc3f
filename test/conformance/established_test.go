package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/conformance"
	"github.com/kube-fence/kube-fence/internal/netns"
)

// Ports of the echo servers this test runs in x/a, beside the lab's own.
const (
	echoTCP = 9000
	echoUDP = 9001
)

// TestOutsideTheAPIEstablishedConnections pins what a policy change does to
// connections open at the time: kube-fence accepts packets of established
// (and related) connections before any policy, so a change applies to new
// connections only. A TCP connection and a UDP flow opened while allowed go
// on carrying data both ways after policies deny them, while a new
// connection is blocked at once; after the policies are deleted, new
// connections go through again.
func TestOutsideTheAPIEstablishedConnections(t *testing.T) {
	l, snap := startLab(t, oneNode)
	server, client := l.PodNS("x/a"), l.PodNS("y/a")
	for _, ip := range podIPs(snap, "x/a") {
		echoServers(t, server, ip)
	}
	for _, ip := range podIPs(snap, "x/a") {
		t.Run(ip.String(), func(t *testing.T) {
			tcp, err := dialTCP(client, netip.AddrPortFrom(ip, echoTCP), 2*time.Second)
			if err != nil {
				t.Fatalf("open the TCP connection while allowed: %v", err)
			}
			defer tcp.Close()
			udp, err := dialUDP(client, netip.AddrPortFrom(ip, echoUDP))
			if err != nil {
				t.Fatal(err)
			}
			defer udp.Close()
			for _, c := range []net.Conn{tcp, udp} {
				if err := roundTrip(c, "before", 2*time.Second); err != nil {
					t.Fatalf("%s before the change: %v", c.LocalAddr().Network(), err)
				}
			}

			// Deny x's ingress and y's egress: both ends isolated.
			update(t, l, denyAll("x", "y"))
			for _, c := range []net.Conn{tcp, udp} {
				if err := roundTrip(c, "after", 2*time.Second); err != nil {
					t.Errorf("%s opened before the change no longer carries data: %v", c.LocalAddr().Network(), err)
				}
			}
			if c, err := dialTCP(client, netip.AddrPortFrom(ip, echoTCP), 500*time.Millisecond); err == nil {
				c.Close()
				t.Error("a new TCP connection went through the deny-all policies")
			}
			if fresh, err := dialUDP(client, netip.AddrPortFrom(ip, echoUDP)); err != nil {
				t.Fatal(err)
			} else {
				if err := roundTrip(fresh, "new", 500*time.Millisecond); err == nil {
					t.Error("a new UDP flow was answered through the deny-all policies")
				}
				fresh.Close()
			}

			update(t, l, func(s *conformance.State) { s.DeleteAllPolicies() })
			c, err := dialTCP(client, netip.AddrPortFrom(ip, echoTCP), 2*time.Second)
			if err != nil {
				t.Fatalf("a new TCP connection after the policies were deleted: %v", err)
			}
			c.Close()
		})
	}
}

func podIPs(s *cluster.Snapshot, key string) []netip.Addr {
	for _, p := range s.Pods {
		if p.Key() == key {
			return p.IPs
		}
	}
	return nil
}

// echoServers runs a TCP and a UDP echo server on ip in ns until the test
// ends.
func echoServers(t *testing.T, ns *netns.NS, ip netip.Addr) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, echoTCP).String()); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(ip, echoUDP).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

func dialTCP(ns *netns.NS, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", dst.String(), timeout)
		return err
	})
	return c, err
}

func dialUDP(ns *netns.NS, dst netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", dst.String())
		return err
	})
	return c, err
}

// roundTrip sends a line and waits for it to come back.
func roundTrip(c net.Conn, msg string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return err
	}
	var got string
	var err error
	if _, ok := c.(*net.UDPConn); ok {
		buf := make([]byte, 512)
		var n int
		n, err = c.Read(buf)
		got = string(buf[:n])
	} else {
		got, err = bufio.NewReader(c).ReadString('\n')
	}
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return errors.New("echo answered " + fmt.Sprintf("%q", got))
	}
	return nil
}
