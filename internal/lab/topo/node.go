package topo

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// Node is one lab node: a network namespace that routes (or bridges) for
// its pods, and where that node's policy is enforced.
type Node struct {
	spec NodeSpec
	ns   *netns.NS
	nl   *netlink.Handle
	// vethSeq numbers the host ends of pod veths.
	vethSeq int
}

// Name returns the node's name.
func (n *Node) Name() string { return n.spec.Name }

// NS returns the node's network namespace.
func (n *Node) NS() *netns.NS { return n.ns }

// PodCIDRs returns the node's pod CIDRs.
func (n *Node) PodCIDRs() []netip.Prefix { return slices.Clone(n.spec.PodCIDRs) }

// Addrs returns the node's own addresses: fabric addresses, then gateways.
func (n *Node) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, p := range n.spec.Fabric {
		out = append(out, p.Addr())
	}
	return append(out, n.spec.Gateways...)
}

// Command runs a program inside the node's namespace (iptables, nft, ip)
// and returns its combined output; the exit status is in the error.
func (n *Node) Command(name string, args ...string) ([]byte, error) {
	return n.ns.Command(name, args...)
}

func (n *Node) gateway(ip netip.Addr) (netip.Addr, bool) {
	for _, g := range n.spec.Gateways {
		if g.Is4() == ip.Is4() {
			return g, true
		}
	}
	return netip.Addr{}, false
}

func (n *Node) inPodCIDR(ip netip.Addr) (netip.Prefix, bool) {
	for _, c := range n.spec.PodCIDRs {
		if c.Contains(ip) {
			return c, true
		}
	}
	return netip.Prefix{}, false
}

func (n *Node) close() error {
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	return n.ns.Close()
}

type sysctl struct{ key, value string }

// quietIPv6 turns off duplicate address detection, so addresses are usable
// at once rather than after a second of probing.
var quietIPv6 = []sysctl{
	{"net.ipv6.conf.all.accept_dad", "0"},
	{"net.ipv6.conf.default.accept_dad", "0"},
}

func nodeSysctls(layout Layout) []sysctl {
	s := append(slices.Clone(quietIPv6),
		sysctl{"net.ipv4.ip_forward", "1"},
		sysctl{"net.ipv6.conf.all.forwarding", "1"},
		// Pods outside the pod CIDR are reached back through cni0 itself;
		// no redirects for that.
		sysctl{"net.ipv4.conf.all.send_redirects", "0"},
		sysctl{"net.ipv4.conf.default.send_redirects", "0"},
	)
	if layout == Bridge {
		// br_netfilter is built in; its switches are per namespace. With
		// them on, bridged pod-to-pod traffic crosses the forward hook, as
		// on a flannel node.
		s = append(s,
			sysctl{"net.bridge.bridge-nf-call-iptables", "1"},
			sysctl{"net.bridge.bridge-nf-call-ip6tables", "1"})
	}
	return s
}

func setSysctls(ns *netns.NS, list []sysctl) error {
	for _, s := range list {
		if err := ns.WriteSysctl(s.key, s.value); err != nil {
			return err
		}
	}
	return nil
}

func newNode(layout Layout, spec NodeSpec) (*Node, error) {
	ns, err := netns.New()
	if err != nil {
		return nil, err
	}
	n := &Node{spec: spec, ns: ns}
	if err := n.setup(layout); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// writeSysctls sets a node's sysctls; tests replace it to fail node setup.
var writeSysctls = setSysctls

func (n *Node) setup(layout Layout) error {
	spec := n.spec
	if err := writeSysctls(n.ns, nodeSysctls(layout)); err != nil {
		if strings.Contains(err.Error(), "bridge-nf-call") {
			err = fmt.Errorf("%w (the bridge layout needs br_netfilter: modprobe br_netfilter, or use the routed layout)", err)
		}
		return err
	}
	var err error
	if n.nl, err = n.ns.Netlink(); err != nil {
		return err
	}
	if layout == Routed {
		lo, err := n.nl.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		for _, g := range spec.Gateways {
			if err := addAddr(n.nl, lo, netip.PrefixFrom(g, g.BitLen())); err != nil {
				return err
			}
		}
		return nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}}
	if err := n.nl.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", BridgeName, err)
	}
	// A bridge whose address nobody set takes the lowest MAC of its ports,
	// so a new pod's veth could change the gateway's MAC under the running
	// pods, whose IPv6 neighbour entries then point at a MAC no longer
	// there. An address set by hand is kept whatever ports come and go.
	if err := n.nl.LinkSetHardwareAddr(br, bridgeMAC(spec.Name)); err != nil {
		return fmt.Errorf("set the address of %s: %w", BridgeName, err)
	}
	for _, g := range spec.Gateways {
		c, ok := n.inPodCIDR(g)
		if !ok {
			return fmt.Errorf("gateway %s is in none of the pod CIDRs %v", g, spec.PodCIDRs)
		}
		if err := addAddr(n.nl, br, netip.PrefixFrom(g, c.Bits())); err != nil {
			return err
		}
	}
	if err := n.nl.LinkSetUp(br); err != nil {
		return fmt.Errorf("bring up %s: %w", BridgeName, err)
	}
	return nil
}

// buildFabric joins the nodes: a namespace with a plain bridge, one veth per
// node, and on every node a route to each other node's pod CIDRs.
func (t *Topology) buildFabric() error {
	ns, err := netns.New()
	if err != nil {
		return fmt.Errorf("fabric: %w", err)
	}
	t.fabric = ns
	h, err := ns.Netlink()
	if err != nil {
		return fmt.Errorf("fabric: %w", err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fabricBridge}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("fabric: add bridge: %w", err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("fabric: bring up bridge: %w", err)
	}
	for i, n := range t.nodes {
		if err := n.joinFabric(h, br, fmt.Sprintf("node%d", i), vethIndexBase+i); err != nil {
			return fmt.Errorf("node %s: join fabric: %w", n.Name(), err)
		}
	}
	for _, n := range t.nodes {
		for _, other := range t.nodes {
			if other == n {
				continue
			}
			for _, c := range other.spec.PodCIDRs {
				if err := n.routeVia(c, other); err != nil {
					return fmt.Errorf("node %s: route to %s: %w", n.Name(), other.Name(), err)
				}
			}
		}
	}
	return nil
}

func (n *Node) joinFabric(fh *netlink.Handle, br netlink.Link, name string, index int) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name, Index: index, MasterIndex: br.Attrs().Index},
		PeerName:      FabricLink,
		PeerNamespace: netlink.NsFd(n.ns.FD()),
	}
	if err := fh.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth: %w", err)
	}
	if err := fh.LinkSetUp(veth); err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	l, err := n.nl.LinkByName(FabricLink)
	if err != nil {
		return err
	}
	for _, a := range n.spec.Fabric {
		if err := addAddr(n.nl, l, a); err != nil {
			return err
		}
	}
	return n.nl.LinkSetUp(l)
}

// routeVia routes dst through other's fabric address of the same family.
func (n *Node) routeVia(dst netip.Prefix, other *Node) error {
	return n.changeRouteVia(dst, other, n.nl.RouteReplace)
}

func (n *Node) changeRouteVia(dst netip.Prefix, other *Node, change func(*netlink.Route) error) error {
	for _, a := range other.spec.Fabric {
		if a.Addr().Is4() != dst.Addr().Is4() {
			continue
		}
		l, err := n.nl.LinkByName(FabricLink)
		if err != nil {
			return err
		}
		return change(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Gw: a.Addr().AsSlice()})
	}
	return fmt.Errorf("node %s has no fabric address for %s", other.Name(), dst)
}

func addAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	addr := &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", p, l.Attrs().Name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// bridgeMAC is the fixed address of a node's cni0: locally administered,
// unicast, derived from the node's name.
func bridgeMAC(node string) net.HardwareAddr {
	h := fnv.New32a()
	h.Write([]byte(node))
	sum := h.Sum32()
	return net.HardwareAddr{0x02, 0x6b, 0x66, byte(sum >> 16), byte(sum >> 8), byte(sum)}
}
