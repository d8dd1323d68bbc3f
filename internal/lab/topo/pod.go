package topo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// Pod is a wired pod: its own namespace, or its node's for a hostNetwork
// pod.
type Pod struct {
	spec     PodSpec
	node     *Node
	ns       *netns.NS
	hostLink string // the node end of the pod's veth
	// routes are the node's host routes to the pod, deleted with it (on the
	// bridge they do not go away with the veth).
	routes []*netlink.Route
}

// Key returns "namespace/name".
func (p *Pod) Key() string { return p.spec.Key }

// NS returns the pod's network namespace (its node's for hostNetwork pods).
func (p *Pod) NS() *netns.NS { return p.ns }

// Node returns the pod's node.
func (p *Pod) Node() *Node { return p.node }

// IPs returns the pod's addresses.
func (p *Pod) IPs() []netip.Addr { return p.spec.IPs }

// HostLink returns the name of the node's end of the pod's veth, in the
// node's namespace; empty for hostNetwork pods.
func (p *Pod) HostLink() string { return p.hostLink }

func (p *Pod) close() error {
	if p.ns == nil || p.spec.HostNetwork {
		return nil
	}
	err := p.ns.Close()
	p.ns = nil
	return err
}

// wirePod creates the pod's namespace and veth, addresses both ends and
// routes to and from the pod.
func (t *Topology) wirePod(p *Pod) error {
	node := p.node
	for _, ip := range p.spec.IPs {
		if _, ok := node.gateway(ip); !ok {
			return fmt.Errorf("address %s: node %s has no pod CIDR of that family", ip, node.Name())
		}
	}
	ns, err := netns.New()
	if err != nil {
		return err
	}
	p.ns = ns
	if err := setSysctls(ns, quietIPv6); err != nil {
		return err
	}
	node.vethSeq++
	p.hostLink = fmt.Sprintf("veth%d", node.vethSeq)
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: p.hostLink, Index: vethIndexBase + node.vethSeq},
		PeerName:         PodLink,
		PeerHardwareAddr: podMAC(p.spec.IPs),
		PeerNamespace:    netlink.NsFd(ns.FD()),
	}
	if t.layout == Bridge {
		br, err := node.nl.LinkByName(BridgeName)
		if err != nil {
			return err
		}
		veth.MasterIndex = br.Attrs().Index
	}
	if err := node.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", p.hostLink, err)
	}
	host, err := node.nl.LinkByName(p.hostLink)
	if err != nil {
		return err
	}
	if t.layout == Routed {
		if err := addAddr(node.nl, host, netip.PrefixFrom(routedGatewayV6, 64)); err != nil {
			return err
		}
	}
	if err := node.nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", p.hostLink, err)
	}
	if err := t.configurePodEnd(p); err != nil {
		return err
	}
	if err := t.nodeRoutes(p, host); err != nil {
		return err
	}
	return t.remoteRoutes(p, true)
}

// podMAC derives a pod's MAC address from its first address (0a:58 and
// the IPv4 address, as the CNI bridge plugin does, or 0a:59 and the last
// four bytes of an IPv6 one). A pod created with the address of a removed
// one then has its MAC too, so neighbour entries that other pods and the
// node still hold for that address stay right; with a random MAC they
// pointed at a MAC nobody had, and traffic to the new pod was lost until
// they expired.
func podMAC(ips []netip.Addr) net.HardwareAddr {
	if len(ips) == 0 {
		return nil // the kernel picks one
	}
	b := ips[0].AsSlice()
	prefix := byte(0x58)
	if ips[0].Is6() {
		prefix = 0x59
	}
	return append(net.HardwareAddr{0x0a, prefix}, b[len(b)-4:]...)
}

// vethIndexBase numbers the node ends of veths away from their peers'
// indexes (a pod's eth0 is always 2). The kernel's link watcher puts off
// handling a link whose index equals its peer's by up to a second, and the
// link drops its packets until then.
const vethIndexBase = 1000

// onLink reports whether the pod shares a subnet with its gateway: only on
// the bridge, for addresses inside the node's pod CIDR. Otherwise the pod
// gets a host address and an on-link route to its gateway.
func (t *Topology) onLink(p *Pod, ip netip.Addr) (netip.Prefix, bool) {
	if t.layout != Bridge {
		return netip.Prefix{}, false
	}
	return p.node.inPodCIDR(ip)
}

func (t *Topology) configurePodEnd(p *Pod) error {
	h, err := p.ns.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName(PodLink)
	if err != nil {
		return err
	}
	for _, ip := range p.spec.IPs {
		prefix := netip.PrefixFrom(ip, ip.BitLen())
		if c, ok := t.onLink(p, ip); ok {
			prefix = netip.PrefixFrom(ip, c.Bits())
		}
		if err := addAddr(h, eth, prefix); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("bring up %s: %w", PodLink, err)
	}
	for _, ip := range p.spec.IPs {
		gw, _ := p.node.gateway(ip)
		route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}
		switch _, onLink := t.onLink(p, ip); {
		case t.layout == Routed && ip.Is6():
			route.Gw = routedGatewayV6.AsSlice() // a link-local gateway is always on link
		case !onLink:
			route.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := h.RouteAdd(route); err != nil {
			return fmt.Errorf("add default route via %s: %w", route.Gw, err)
		}
	}
	return nil
}

// nodeRoutes gives the node a host route to every pod address it cannot
// reach as a neighbour on cni0: all of them in the routed layout, those
// outside the pod CIDR on the bridge.
func (t *Topology) nodeRoutes(p *Pod, host netlink.Link) error {
	link := host
	if t.layout == Bridge {
		br, err := p.node.nl.LinkByName(BridgeName)
		if err != nil {
			return err
		}
		link = br
	}
	for _, ip := range p.spec.IPs {
		if _, ok := t.onLink(p, ip); ok {
			continue
		}
		gw, _ := p.node.gateway(ip)
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       ipNet(netip.PrefixFrom(ip, ip.BitLen())),
			Scope:     netlink.SCOPE_LINK,
			Src:       gw.AsSlice(),
		}
		if err := p.node.nl.RouteAdd(route); err != nil {
			return fmt.Errorf("node route to %s: %w", ip, err)
		}
		p.routes = append(p.routes, route)
	}
	return nil
}

// remoteRoutes adds (or deletes) on the other nodes a host route to each pod
// address outside its node's pod CIDRs; addresses inside them are covered
// by the per-CIDR routes of the fabric.
func (t *Topology) remoteRoutes(p *Pod, add bool) error {
	var errs []error
	for _, ip := range p.spec.IPs {
		if _, ok := p.node.inPodCIDR(ip); ok {
			continue
		}
		for _, other := range t.nodes {
			if other == p.node {
				continue
			}
			change := other.nl.RouteReplace
			if !add {
				change = other.nl.RouteDel
			}
			if err := other.changeRouteVia(netip.PrefixFrom(ip, ip.BitLen()), p.node, change); err != nil {
				errs = append(errs, fmt.Errorf("node %s: route to pod %s: %w", other.Name(), p.Key(), err))
			}
		}
	}
	return errors.Join(errs...)
}
