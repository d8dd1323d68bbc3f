package topo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

func nodeSpec(name string, i int, fabric bool) NodeSpec {
	s := NodeSpec{
		Name: name,
		PodCIDRs: []netip.Prefix{
			netip.MustParsePrefix(fmt.Sprintf("10.42.%d.0/24", i)),
			netip.MustParsePrefix(fmt.Sprintf("fd00:10:42:%d::/64", i)),
		},
		Gateways: []netip.Addr{
			netip.MustParseAddr(fmt.Sprintf("10.42.%d.1", i)),
			netip.MustParseAddr(fmt.Sprintf("fd00:10:42:%d::1", i)),
		},
	}
	if fabric {
		s.Fabric = []netip.Prefix{
			netip.MustParsePrefix(fmt.Sprintf("10.41.0.%d/24", i+1)),
			netip.MustParsePrefix(fmt.Sprintf("fd00:10:41::%d/64", i+1)),
		}
	}
	return s
}

func podSpec(key, node string, ips ...string) PodSpec {
	s := PodSpec{Key: key, Node: node}
	for _, ip := range ips {
		s.IPs = append(s.IPs, netip.MustParseAddr(ip))
	}
	return s
}

func build(t *testing.T, layout Layout, nodes []NodeSpec, pods ...PodSpec) *Topology {
	t.Helper()
	testenv.RequireRoot(t)
	topo, err := New(layout, nodes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, p := range pods {
		if _, err := topo.AddPod(p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := topo.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	return topo
}

// echo listens on every address of the pod on port 7 and answers with the
// pod's key, until the test ends.
func echo(t *testing.T, ns *netns.NS, key string, ips []netip.Addr) {
	t.Helper()
	for _, ip := range ips {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 7).String())
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
				io.WriteString(c, key)
				c.Close()
			}
		}()
	}
}

// reach dials ip:7 from inside ns and returns who answered.
func reach(ns *netns.NS, ip netip.Addr) (string, error) {
	var got []byte
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(ip, 7).String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		got, err = io.ReadAll(c)
		return err
	})
	return string(got), err
}

// checkFullMesh has every pod reach every address of every other pod, and
// every node reach every pod.
func checkFullMesh(t *testing.T, topo *Topology, keys ...string) {
	t.Helper()
	for _, k := range keys {
		p := topo.Pod(k)
		echo(t, p.NS(), k, p.IPs())
	}
	for _, from := range keys {
		for _, to := range keys {
			if from == to {
				continue
			}
			for _, ip := range topo.Pod(to).IPs() {
				if !hasFamily(topo.Pod(from).IPs(), ip) {
					continue
				}
				if got, err := reach(topo.Pod(from).NS(), ip); err != nil || got != to {
					t.Errorf("%s -> %s (%s): got %q, %v", from, to, ip, got, err)
				}
			}
		}
	}
	for _, n := range topo.Nodes() {
		for _, to := range keys {
			for _, ip := range topo.Pod(to).IPs() {
				if got, err := reach(n.NS(), ip); err != nil || got != to {
					t.Errorf("node %s -> %s (%s): got %q, %v", n.Name(), to, ip, got, err)
				}
			}
		}
	}
}

func hasFamily(ips []netip.Addr, ip netip.Addr) bool {
	for _, a := range ips {
		if a.Is4() == ip.Is4() {
			return true
		}
	}
	return false
}

func TestSingleNode(t *testing.T) {
	for _, layout := range []Layout{Bridge, Routed} {
		t.Run(string(layout), func(t *testing.T) {
			topo := build(t, layout, []NodeSpec{nodeSpec("n", 0, false)},
				podSpec("x/a", "n", "10.42.0.2", "fd00:10:42::2"),
				podSpec("x/b", "n", "10.42.0.3", "fd00:10:42::3"),
				podSpec("x/v4only", "n", "10.42.0.4"),
				// Outside the pod CIDR: reached through a host route.
				podSpec("x/odd", "n", "192.168.9.9", "fd00:99::9"),
			)
			checkFullMesh(t, topo, "x/a", "x/b", "x/v4only", "x/odd")
			n := topo.Node("n")
			want := map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
			if layout == Bridge {
				want["net.bridge.bridge-nf-call-iptables"] = "1"
				want["net.bridge.bridge-nf-call-ip6tables"] = "1"
			}
			for k, v := range want {
				if got, err := n.NS().ReadSysctl(k); err != nil || got != v {
					t.Errorf("node sysctl %s = %q, %v; want %s", k, got, err, v)
				}
			}
			out, err := n.Command("ip", "-o", "link", "show")
			if err != nil {
				t.Fatalf("ip link: %v: %s", err, out)
			}
			if hasBridge := strings.Contains(string(out), BridgeName); hasBridge != (layout == Bridge) {
				t.Errorf("layout %s: cni0 present = %v:\n%s", layout, hasBridge, out)
			}
		})
	}
}

func TestTwoNodes(t *testing.T) {
	for _, layout := range []Layout{Bridge, Routed} {
		t.Run(string(layout), func(t *testing.T) {
			topo := build(t, layout, []NodeSpec{nodeSpec("n0", 0, true), nodeSpec("n1", 1, true)},
				podSpec("x/a", "n0", "10.42.0.2", "fd00:10:42::2"),
				podSpec("x/b", "n0", "10.42.0.3", "fd00:10:42::3"),
				podSpec("y/a", "n1", "10.42.1.2", "fd00:10:42:1::2"),
				podSpec("y/odd", "n1", "192.168.9.9", "fd00:99::9"),
			)
			checkFullMesh(t, topo, "x/a", "x/b", "y/a", "y/odd")
			if got := topo.Node("n1").Addrs(); len(got) != 4 || got[0].String() != "10.41.0.2" {
				t.Errorf("node n1 addresses = %v, want fabric then gateways", got)
			}
		})
	}
}

func TestRemovePod(t *testing.T) {
	topo := build(t, Bridge, []NodeSpec{nodeSpec("n0", 0, true), nodeSpec("n1", 1, true)},
		podSpec("x/a", "n0", "10.42.0.2"),
		podSpec("x/odd", "n1", "192.168.9.9"),
	)
	link := topo.Pod("x/odd").HostLink()
	if err := topo.RemovePod("x/odd"); err != nil {
		t.Fatal(err)
	}
	if topo.Pod("x/odd") != nil {
		t.Error("removed pod still listed")
	}
	out, _ := topo.Node("n1").Command("ip", "-o", "link", "show")
	if strings.Contains(string(out), link) {
		t.Errorf("host link %s still on the node:\n%s", link, out)
	}
	out, _ = topo.Node("n0").Command("ip", "route", "show")
	if strings.Contains(string(out), "192.168.9.9") {
		t.Errorf("route to the removed pod left on n0:\n%s", out)
	}
	// The address can be reused at once.
	if _, err := topo.AddPod(podSpec("x/new", "n1", "192.168.9.9")); err != nil {
		t.Fatal(err)
	}
	if err := topo.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkFullMesh(t, topo, "x/a", "x/new")
}

func TestHostNetworkPodSharesNode(t *testing.T) {
	topo := build(t, Routed, []NodeSpec{nodeSpec("n", 0, false)},
		PodSpec{Key: "kube-system/agent", Node: "n", HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("10.42.0.1")}},
		podSpec("x/a", "n", "10.42.0.2"),
	)
	if topo.Pod("kube-system/agent").NS() != topo.Node("n").NS() {
		t.Error("a hostNetwork pod must live in its node's namespace")
	}
	checkFullMesh(t, topo, "kube-system/agent", "x/a")
}

func TestBadInput(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := New("overlay", nil); err == nil {
		t.Error("New accepted an unknown layout")
	}
	topo := build(t, Bridge, []NodeSpec{{
		Name:     "v4",
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")},
		Gateways: []netip.Addr{netip.MustParseAddr("10.9.0.1")},
	}})
	if _, err := topo.AddPod(podSpec("x/a", "v4", "fd00::5")); err == nil || !strings.Contains(err.Error(), "no pod CIDR of that family") {
		t.Errorf("IPv6 pod on an IPv4-only node: %v", err)
	}
	if _, err := topo.AddPod(podSpec("x/a", "nowhere", "10.9.0.2")); err == nil {
		t.Error("AddPod accepted an unknown node")
	}
}
