package topo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestBridgeAddressIsStable: adding pods never changes cni0's MAC address.
// A bridge left to choose takes the lowest MAC of its ports, so a new veth
// with a lower (random) one changed the gateway's MAC under the running
// pods: their IPv6 neighbour entries for the gateway went stale (IPv6 sends
// no unsolicited advertisement on a MAC change) and traffic through the
// gateway, to other nodes, was lost for seconds.
func TestBridgeAddressIsStable(t *testing.T) {
	topo := build(t, Bridge, []NodeSpec{nodeSpec("n", 0, false)}, podSpec("x/p0", "n", "10.42.0.2", "fd00:10:42::2"))
	n := topo.Node("n")
	mac := func() string {
		br, err := n.nl.LinkByName(BridgeName)
		if err != nil {
			t.Fatal(err)
		}
		return br.Attrs().HardwareAddr.String()
	}
	first := mac()
	var seen []string
	for i := 1; i <= 24; i++ {
		if _, err := topo.AddPod(podSpec(fmt.Sprintf("x/p%d", i), "n", fmt.Sprintf("10.42.0.%d", i+2))); err != nil {
			t.Fatal(err)
		}
		if m := mac(); m != first && !slices.Contains(seen, m) {
			seen = append(seen, m)
		}
	}
	if len(seen) > 0 {
		t.Errorf("cni0 changed its MAC address from %s to %v as pods were added", first, seen)
	}
}

// TestReusedAddressKeepsItsMAC: a pod created with the address of a removed
// one is reached at once by pods that talked to the old one. A new random
// MAC left their neighbour entries pointing at the old pod's MAC, and the
// first packets to the new pod were lost until those entries expired or the
// new pod happened to send them an ARP request or a neighbour solicitation.
func TestReusedAddressKeepsItsMAC(t *testing.T) {
	b := podSpec("x/b", "n", "10.42.0.3", "fd00:10:42::3")
	topo := build(t, Bridge, []NodeSpec{nodeSpec("n", 0, false)}, podSpec("x/a", "n", "10.42.0.2", "fd00:10:42::2"), b)
	a := topo.Pod("x/a").NS()
	echo(t, topo.Pod("x/b").NS(), "x/b", b.IPs)
	for _, ip := range b.IPs {
		if got, err := reach(a, ip); err != nil || got != "x/b" {
			t.Fatalf("x/a -> x/b (%s): got %q, %v", ip, got, err)
		}
	}
	if err := topo.RemovePod("x/b"); err != nil {
		t.Fatal(err)
	}
	b.Key = "x/b2"
	p, err := topo.AddPod(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	echo(t, p.NS(), "x/b2", b.IPs)
	for _, ip := range b.IPs {
		var got string
		err := a.Do(func() error {
			// Shorter than TCP's first SYN retransmission (1 s): a lost
			// SYN shows as a timeout.
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip, 7).String(), 500*time.Millisecond)
			if err != nil {
				return err
			}
			defer c.Close()
			buf, err := io.ReadAll(c)
			got = string(buf)
			return err
		})
		if err != nil || got != "x/b2" {
			t.Errorf("x/a -> x/b2 (%s, the address x/b had): got %q, %v", ip, got, err)
		}
	}
}
