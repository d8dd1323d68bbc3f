// Package cluster holds the cluster snapshot: the plain Go values the policy
// compiler reads (namespaces, pods, nodes, NetworkPolicies,
// ClusterNetworkPolicies), and the conversions from Kubernetes API objects
// into them.
//
// A snapshot keeps only what enforcement needs. The agent trims informer
// objects down to these values, which is what keeps its memory small at scale,
// and the lab builds them from YAML; both feed the same compiler.
package cluster

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Snapshot is the state of a cluster at one instant.
type Snapshot struct {
	Namespaces []*Namespace
	Pods       []*Pod
	Nodes      []*Node
	Policies   []*networkingv1.NetworkPolicy

	// ClusterNetworkPolicies are the admin and baseline tiers, enforced
	// around the NetworkPolicies by the compiler.
	ClusterNetworkPolicies []*ClusterNetworkPolicy
}

// Namespace is a Kubernetes Namespace as far as policy is concerned.
type Namespace struct {
	Name   string
	Labels labels.Set
}

// Pod is a Kubernetes Pod as far as policy is concerned.
type Pod struct {
	Namespace   string
	Name        string
	Labels      labels.Set
	NodeName    string
	HostNetwork bool
	Phase       corev1.PodPhase
	IPs         []netip.Addr // status.podIPs, at most one per family
	Ports       []ContainerPort
}

// ContainerPort is one declared port of one of the pod's containers; named
// ports in policies resolve against these.
type ContainerPort struct {
	Name     string
	Port     int32
	Protocol corev1.Protocol // TCP when the manifest leaves it out
}

// Node is a Kubernetes Node as far as policy is concerned.
type Node struct {
	Name      string
	Labels    labels.Set     // what ClusterNetworkPolicy nodes peers select on
	Addresses []netip.Addr   // status.addresses of every type that holds an IP
	PodCIDRs  []netip.Prefix // spec.podCIDRs
}

// Key returns "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Enforceable reports whether the pod takes part in NetworkPolicy at all: it
// must have an address, must not share the node's network namespace, and must
// not have finished (its address may already belong to a new pod).
func (p *Pod) Enforceable() bool {
	return !p.HostNetwork && len(p.IPs) > 0 &&
		p.Phase != corev1.PodSucceeded && p.Phase != corev1.PodFailed
}

// PodFromAPI converts an API Pod. Addresses come from status.podIPs, or
// status.podIP for objects written before dual-stack.
func PodFromAPI(in *corev1.Pod) (*Pod, error) {
	p := &Pod{
		Namespace:   in.Namespace,
		Name:        in.Name,
		Labels:      labels.Set(in.Labels),
		NodeName:    in.Spec.NodeName,
		HostNetwork: in.Spec.HostNetwork,
		Phase:       in.Status.Phase,
	}
	if p.Namespace == "" {
		p.Namespace = corev1.NamespaceDefault
	}
	ips := in.Status.PodIPs
	if len(ips) == 0 && in.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: in.Status.PodIP}}
	}
	for i, ip := range ips {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			return nil, fmt.Errorf("pod %s: status.podIPs[%d].ip: %w", p.Key(), i, err)
		}
		p.IPs = append(p.IPs, a.Unmap())
	}
	for ci, c := range in.Spec.Containers {
		for pi, cp := range c.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				return nil, fmt.Errorf("pod %s: spec.containers[%d].ports[%d].containerPort: %d is not between 1 and 65535",
					p.Key(), ci, pi, cp.ContainerPort)
			}
			p.Ports = append(p.Ports, ContainerPort{Name: cp.Name, Port: cp.ContainerPort, Protocol: proto})
		}
	}
	return p, nil
}

// NamespaceFromAPI converts an API Namespace. The API server always sets the
// kubernetes.io/metadata.name label; objects that did not pass through one
// (the lab's YAML) get it here, so selectors on it behave the same.
func NamespaceFromAPI(in *corev1.Namespace) *Namespace {
	l := make(labels.Set, len(in.Labels)+1)
	for k, v := range in.Labels {
		l[k] = v
	}
	l[corev1.LabelMetadataName] = in.Name
	return &Namespace{Name: in.Name, Labels: l}
}

// NodeFromAPI converts an API Node.
func NodeFromAPI(in *corev1.Node) (*Node, error) {
	n := &Node{Name: in.Name, Labels: labels.Set(in.Labels)}
	for _, a := range in.Status.Addresses {
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue // hostnames and DNS names are addresses too, but not IPs
		}
		n.Addresses = append(n.Addresses, ip.Unmap())
	}
	cidrs := in.Spec.PodCIDRs
	if len(cidrs) == 0 && in.Spec.PodCIDR != "" {
		cidrs = []string{in.Spec.PodCIDR}
	}
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("node %s: spec.podCIDRs[%d]: %w", n.Name, i, err)
		}
		n.PodCIDRs = append(n.PodCIDRs, p.Masked())
	}
	return n, nil
}
