package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/conformance"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/lab/stream"
	"github.com/kube-fence/kube-fence/internal/netns"
)

// Ports of the echo servers this test runs in x/a, beside the lab's own.
const (
	echoTCP = 9000
	echoUDP = 9001
)

// TestOutsideTheAPIEstablishedConnections pins what a policy change does to
// connections open at the time, in both modes of --existing-connections.
func TestOutsideTheAPIEstablishedConnections(t *testing.T) {
	t.Run("cut", testEstablishedCut)
	t.Run("keep", testEstablishedKeep)
}

// testEstablishedCut: with the default, cut, a TCP connection and a UDP flow
// that a new policy denies stop carrying data as soon as the change is
// committed, while those it still allows go on without a lost byte; the
// same when a relabel moves the client out of the allowing selector. Both
// families at once: x/a serves, y/a and y/b stream to it.
func testEstablishedCut(t *testing.T) {
	l, snap := startLab(t, oneNode)
	var streams []*clientStream
	for _, ip := range podIPs(snap, "x/a") {
		echo, err := stream.ServeEcho(l.PodNS("x/a"), netip.AddrPortFrom(ip, echoTCP))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { echo.Close() })
		for _, client := range []string{"y/a", "y/b"} {
			for _, network := range []string{"tcp", "udp"} {
				s, err := stream.Dial(l.PodNS(client), network, netip.AddrPortFrom(ip, echoTCP), 64_000)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				streams = append(streams, &clientStream{client, s})
			}
		}
	}
	for _, cs := range streams {
		if ok, st := cs.Flowing(300 * time.Millisecond); !ok {
			t.Fatalf("%s from %s does not flow before any policy: %+v", cs.Name, cs.client, st)
		}
	}

	// x/a talks only with y/b: y/a's connections are cut, y/b's go on.
	// Egress too, for UDP: a cut flow whose server answers a datagram that
	// was in flight at the cut comes back as a new flow from the server,
	// which only its egress policy can deny (docs/policy-semantics.md).
	yb := conformance.PodNamespacePeer(conformance.Labels(conformance.PodLabel, "b"), conformance.Labels(conformance.NamespaceLabel, "y"))
	allowYB := conformance.Policy("x", "a-with-y-b", conformance.Labels(conformance.PodLabel, "a"),
		conformance.Ingress(conformance.From(nil, yb)), conformance.Egress(conformance.To(nil, yb)))
	start := time.Now()
	update(t, l, func(s *conformance.State) { s.Apply(allowYB) })
	t.Logf("policy committed and connections cut in %v", time.Since(start))
	checkCut(t, streams, start, map[string]bool{"y/a": true})

	// y/b leaves the selector that allowed it.
	start = time.Now()
	update(t, l, func(s *conformance.State) {
		if err := s.LabelPod("y/b", conformance.PodLabel, "b2"); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("relabel committed and connections cut in %v", time.Since(start))
	checkCut(t, streams, start, map[string]bool{"y/a": true, "y/b": true})
}

type clientStream struct {
	client string
	*stream.Stream
}

// checkCut checks that the streams of the denied clients stopped and the
// others still flow, in order and complete, and logs when each stopped.
func checkCut(t *testing.T, streams []*clientStream, start time.Time, denied map[string]bool) {
	t.Helper()
	var wg sync.WaitGroup
	for _, cs := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(50 * time.Millisecond) // packets in flight at the cut
			ok, st := cs.Flowing(500 * time.Millisecond)
			switch {
			case denied[cs.client] && ok:
				t.Errorf("%s from %s still carries data after the change denied it", cs.Name, cs.client)
			case denied[cs.client]:
				if st.Last.Before(start) {
					return // cut by an earlier change
				}
				t.Logf("%s from %s: last data %v after the change began", cs.Name, cs.client, st.Last.Sub(start).Round(time.Millisecond))
			case !ok:
				t.Errorf("%s from %s, still allowed, stopped flowing: %+v", cs.Name, cs.client, st)
			}
		}()
	}
	wg.Wait()
}

// testEstablishedKeep: with --existing-connections=keep, packets of
// established (and related) connections are accepted before any policy, so
// a change applies to new connections only. A TCP connection and a UDP
// flow opened while allowed go on carrying data both ways after policies
// deny them, while a new connection is blocked at once; after the policies
// are deleted, new connections go through again.
func testEstablishedKeep(t *testing.T) {
	v := oneNode
	v.Existing = enforce.ExistingKeep
	snap, err := conformance.Model(v.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	l := startLabWith(t, v, snap)
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
