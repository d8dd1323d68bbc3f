package topo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/kube-fence/kube-fence/internal/netns"
)

// Layout is how pods are wired to their node.
type Layout string

const (
	// Bridge puts every pod's veth on the node's bridge cni0, which holds
	// the gateway addresses, with br_netfilter on: flannel's layout on K3s.
	// Traffic between pods of one node is bridged, and still crosses the
	// node's netfilter forward hook.
	Bridge Layout = "bridge"
	// Routed gives each pod a point-to-point veth and the node a /32 and
	// /128 route per pod: Calico's layout. Traffic between pods is routed.
	Routed Layout = "routed"
)

// Fixed link names, so tests and enforcers can rely on them.
const (
	BridgeName   = "cni0"    // the node's pod bridge (bridge layout)
	PodLink      = "eth0"    // a pod's interface
	FabricLink   = "eth0"    // a node's link to the other nodes
	fabricBridge = "fabric0" // in the fabric namespace
)

// routedGatewayV6 is the link-local gateway pods use in the routed layout;
// every host-side veth holds it, as Calico does with its fixed addresses.
var routedGatewayV6 = netip.MustParseAddr("fe80::1")

// NodeSpec describes one node to build.
type NodeSpec struct {
	Name     string
	PodCIDRs []netip.Prefix
	// Gateways are the node's address in each pod CIDR, one per family,
	// held by cni0 (bridge) or the node's loopback (routed).
	Gateways []netip.Addr
	// Fabric are the node's addresses on the link joining the nodes, with
	// the link's prefix length. Empty when there is one node.
	Fabric []netip.Prefix
}

// PodSpec describes one pod to wire.
type PodSpec struct {
	Key         string // namespace/name
	Node        string
	IPs         []netip.Addr
	HostNetwork bool // the pod lives in its node's namespace
}

// Topology is a set of nodes, each a network namespace, and the pods wired
// to them.
type Topology struct {
	layout Layout
	nodes  []*Node
	pods   map[string]*Pod
	fabric *netns.NS
	// unready are namespaces whose IPv6 addresses may still be tentative.
	unready []*netns.NS
}

// New builds the nodes: their namespaces, bridge or gateway addresses,
// forwarding and br_netfilter sysctls, and with several nodes the fabric
// that joins them and the routes to each other's pod CIDRs.
func New(layout Layout, nodes []NodeSpec) (*Topology, error) {
	if layout != Bridge && layout != Routed {
		return nil, fmt.Errorf("layout %q: want %q or %q", layout, Bridge, Routed)
	}
	t := &Topology{layout: layout, pods: map[string]*Pod{}}
	if err := t.build(nodes); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Topology) build(nodes []NodeSpec) error {
	for _, spec := range nodes {
		n, err := newNode(t.layout, spec)
		if err != nil {
			return fmt.Errorf("node %s: %w", spec.Name, err)
		}
		t.nodes = append(t.nodes, n)
		t.unready = append(t.unready, n.ns)
	}
	if len(nodes) > 1 {
		return t.buildFabric()
	}
	return nil
}

// Layout returns how pods are wired.
func (t *Topology) Layout() Layout { return t.layout }

// Nodes returns the nodes in the order they were given.
func (t *Topology) Nodes() []*Node { return slices.Clone(t.nodes) }

// Node returns the node with the given name, or nil.
func (t *Topology) Node(name string) *Node {
	for _, n := range t.nodes {
		if n.spec.Name == name {
			return n
		}
	}
	return nil
}

// Pod returns the pod with the given key, or nil.
func (t *Topology) Pod(key string) *Pod { return t.pods[key] }

// AddPod wires a pod to its node. Call Ready before sending traffic.
func (t *Topology) AddPod(spec PodSpec) (*Pod, error) {
	if _, dup := t.pods[spec.Key]; dup {
		return nil, fmt.Errorf("pod %s is already wired", spec.Key)
	}
	node := t.Node(spec.Node)
	if node == nil {
		return nil, fmt.Errorf("pod %s: no node %q", spec.Key, spec.Node)
	}
	p := &Pod{spec: spec, node: node}
	if spec.HostNetwork {
		p.ns = node.ns
		t.pods[spec.Key] = p
		return p, nil
	}
	if err := t.wirePod(p); err != nil {
		p.close()
		return nil, fmt.Errorf("pod %s: %w", spec.Key, err)
	}
	t.pods[spec.Key] = p
	t.unready = append(t.unready, p.ns)
	return p, nil
}

// RemovePod unwires a pod and releases its namespace.
func (t *Topology) RemovePod(key string) error {
	p := t.pods[key]
	if p == nil {
		return fmt.Errorf("pod %s is not wired", key)
	}
	delete(t.pods, key)
	if p.spec.HostNetwork {
		return nil
	}
	var errs []error
	for _, r := range p.routes {
		errs = append(errs, p.node.nl.RouteDel(r))
	}
	if l, err := p.node.nl.LinkByName(p.hostLink); err == nil {
		errs = append(errs, p.node.nl.LinkDel(l)) // takes the pod end and the routes with it
	}
	errs = append(errs, t.remoteRoutes(p, false), p.close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s: %w", key, err)
	}
	return nil
}

// Ready waits until the links and IPv6 addresses added since the last call
// carry traffic. Links stay unable to send and IPv6 addresses tentative
// (even without duplicate address detection) until the kernel's link
// watcher has run, which it may put off for up to a second; packets sent
// before are lost.
func (t *Topology) Ready(ctx context.Context) error {
	for len(t.unready) > 0 {
		if err := waitReady(ctx, t.unready[0]); err != nil {
			return err
		}
		t.unready = t.unready[1:]
	}
	return nil
}

// Close releases every namespace. Links, routes and anything programmed in
// them vanish with the namespaces once no socket holds them.
func (t *Topology) Close() error {
	var errs []error
	for _, p := range t.pods {
		errs = append(errs, p.close())
	}
	t.pods = map[string]*Pod{}
	for _, n := range t.nodes {
		errs = append(errs, n.close())
	}
	t.nodes = nil
	if t.fabric != nil {
		errs = append(errs, t.fabric.Close())
		t.fabric = nil
	}
	t.unready = nil
	return errors.Join(errs...)
}
