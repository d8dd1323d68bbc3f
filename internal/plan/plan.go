package plan

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// Direction is the side of a connection a policy rule governs, seen from the
// selected pod.
type Direction uint8

const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Protocol is an IP protocol number; only those NetworkPolicy names are used.
type Protocol uint8

const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("protocol-%d", uint8(p))
}

// Plan is everything one node must enforce: its own pods, the decision each
// isolated pod needs per direction, and the node's own addresses. It is the
// only thing the dataplane knows about Kubernetes.
type Plan struct {
	Node string
	// Pods are the enforceable pods on the node, sorted by namespace and name.
	Pods []LocalPod
	// Profiles are the decisions the pods refer to, sorted by ID. Pods
	// selected by the same policies (and, for ingress, resolving the same
	// named ports) share one profile.
	Profiles []*Profile
	// NodeAddrs are the node's own addresses. Traffic from them to the
	// node's pods is always allowed, as Kubernetes requires.
	NodeAddrs addrset.Set
	// PodCIDRs are the node's pod ranges. When DefaultDenyUnknown is set,
	// an address in them that is not one of Pods is treated as isolated in
	// both directions until its pod is known.
	PodCIDRs           addrset.Set
	DefaultDenyUnknown bool
	// Problems lists the policy parts that could not be compiled. Each was
	// left out; the policy still isolates the pods it selects.
	Problems []Problem
}

// LocalPod is an enforceable pod on the plan's node.
type LocalPod struct {
	Namespace, Name string
	IPs             []netip.Addr
	// Ingress and Egress name the profile deciding that direction, or are
	// empty when the pod is not isolated in that direction.
	Ingress, Egress ProfileID
}

// Key returns "namespace/name".
func (p LocalPod) Key() string { return p.Namespace + "/" + p.Name }

// ProfileID identifies a profile by what defines it (direction, the
// policies selecting the pod, the named ports it resolves), not by its
// content, so a peer pod appearing changes a profile's sets without
// renaming it.
type ProfileID string

// Profile is the decision for one direction of a group of pods: the union of
// the rules of every NetworkPolicy that selects them (anything it does not
// allow is denied), behind the admin ClusterNetworkPolicy rules that apply
// to them, or, when no NetworkPolicy isolates them, the admin and baseline
// rules.
type Profile struct {
	ID        ProfileID
	Direction Direction
	// Policies are the "namespace/name" of the policies behind the profile.
	Policies []string
	// Any holds the peers allowed on every protocol and port, and AnyParts
	// the peers it is the union of (see PeerSet).
	Any      addrset.Set
	AnyParts []PeerSet
	// Ports are disjoint port ranges, sorted by protocol and first port, each
	// with the peers allowed on it.
	Ports []PortClass

	// The ClusterNetworkPolicy tiers, empty for pods no ClusterNetworkPolicy
	// selects (Decide says how they combine). Admin rules run before the
	// NetworkPolicy part above. Baseline rules run only when NotIsolated:
	// no NetworkPolicy isolates the pods in this direction, so Any and Ports
	// are empty and the baseline, then the default, allow, decide. A rule
	// is shared by every profile it applies to.
	Admin, Baseline []*TierRule
	NotIsolated     bool
}

// PortClass is a range of ports of one protocol whose allowed peers are the
// same throughout the range.
type PortClass struct {
	Protocol    Protocol
	First, Last uint16 // inclusive
	Peers       addrset.Set
	// Parts are peers whose union, less the profile's Any, is Peers: a
	// packet from an Any peer is allowed before its port is looked at, so
	// the dataplane may match the parts in place of Peers.
	Parts []PeerSet
}

// PeerSet is the addresses of one peer as policies name it: the pods a
// selector picks (a pod selector within a namespace or a namespace
// selector), an ipBlock with its excepts, the pods of a peer serving a
// named port on one number, or every address. Key is derived from that
// meaning alone, so every profile using the peer names the same set, and it
// stays when the peer's pods come and go. The compiler gives equal keys the
// same Addrs value, which lets the dataplane hold one copy of a peer's
// addresses however many profiles use it. Parts are sorted by Key.
type PeerSet struct {
	Key   string
	Addrs addrset.Set
}

// Allows reports whether the profile lets traffic to or from peer on proto and
// port through. It evaluates the plan exactly as the dataplane programs it, so
// tests can compare it with the reference evaluator.
func (p *Profile) Allows(peer netip.Addr, proto Protocol, port uint16) bool {
	if p.Any.Contains(peer) {
		return true
	}
	i, found := slices.BinarySearchFunc(p.Ports, portKey{proto, port}, comparePort)
	return found && p.Ports[i].Peers.Contains(peer)
}

type portKey struct {
	proto Protocol
	port  uint16
}

func comparePort(c PortClass, k portKey) int {
	switch {
	case c.Protocol < k.proto:
		return -1
	case c.Protocol > k.proto:
		return 1
	case c.Last < k.port:
		return -1
	case c.First > k.port:
		return 1
	}
	return 0
}

// Profile returns the profile with the given ID, or nil.
func (pl *Plan) Profile(id ProfileID) *Profile {
	i, ok := slices.BinarySearchFunc(pl.Profiles, id, func(p *Profile, id ProfileID) int {
		switch {
		case p.ID < id:
			return -1
		case p.ID > id:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return pl.Profiles[i]
}

// Problem is a part of a policy kube-fence could not enforce.
type Problem struct {
	// Kind is the policy's kind: KindNetworkPolicy (the zero value) or
	// KindClusterNetworkPolicy.
	Kind    string
	Policy  string // "namespace/name", or the name of a cluster-scoped policy
	Field   string // path in the object, such as spec.ingress[0].from[1].ipBlock.cidr
	Message string
}

// The kinds of policy a Problem can be about.
const (
	KindNetworkPolicy        = ""
	KindClusterNetworkPolicy = "ClusterNetworkPolicy"
)

func (p Problem) String() string {
	kind := "networkpolicy"
	if p.Kind == KindClusterNetworkPolicy {
		kind = "clusternetworkpolicy"
	}
	return fmt.Sprintf("%s %s: %s: %s", kind, p.Policy, p.Field, p.Message)
}
