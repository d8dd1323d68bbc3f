package plan

import (
	"net/netip"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// Action is what a ClusterNetworkPolicy rule does with the traffic it
// matches.
type Action uint8

const (
	// Accept allows the traffic; no later tier is asked.
	Accept Action = iota
	// Deny drops the traffic; no later tier is asked.
	Deny
	// Pass hands the traffic to the next tier: from the admin tier to the
	// NetworkPolicy part (or, when no NetworkPolicy isolates the pods, the
	// baseline rules); from the baseline tier to the default, allow.
	Pass
)

func (a Action) String() string {
	switch a {
	case Deny:
		return "Deny"
	case Pass:
		return "Pass"
	}
	return "Accept"
}

// TierRule is one ClusterNetworkPolicy rule as the dataplane runs it. The
// rules of a profile are in evaluation order: by policy priority, then
// policy name, then the rule's position in the policy. A rule that could
// not be compiled and would have denied or passed is a Deny of everything;
// one that would have accepted is left out (fail closed).
type TierRule struct {
	// ID names the rule's address and port sets, shared by every profile
	// the rule applies to: a short hash of the policy's name, the direction
	// and the rule's index.
	ID       string
	Policy   string // the ClusterNetworkPolicy's name
	Priority int32
	Field    string // spec.ingress[i] or spec.egress[i]
	Action   Action
	// Matches are the rule's alternatives: the rule matches when one does.
	Matches []TierMatch
}

// TierMatch is one alternative of a rule: the peer is in Peers and the
// connection's protocol and destination port in one of Ports.
type TierMatch struct {
	// Key names the match's peer sets: the rule's ID, plus the protocol and
	// number of a named port resolved against the destinations.
	Key   string
	Peers addrset.Set
	// Ports are the protocol and port ranges the match covers; nil means
	// every protocol and port (ICMP included).
	Ports []PortRange
	// Local says the ports were resolved against the profile's own pods
	// (an ingress rule's destinationNamedPort), so the port set belongs to
	// the profile, not to the rule.
	Local bool
}

// PortRange is an inclusive range of ports of one protocol.
type PortRange struct {
	Protocol    Protocol
	First, Last uint16
}

// matches reports whether the match covers the connection.
func (m *TierMatch) matches(peer netip.Addr, proto Protocol, port uint16) bool {
	if !m.Peers.Contains(peer) {
		return false
	}
	if m.Ports == nil {
		return true
	}
	for _, r := range m.Ports {
		if r.Protocol == proto && r.First <= port && port <= r.Last {
			return true
		}
	}
	return false
}

// Covers reports whether one of the rule's alternatives covers the
// connection.
func (r *TierRule) Covers(peer netip.Addr, proto Protocol, port uint16) bool {
	for i := range r.Matches {
		if r.Matches[i].matches(peer, proto, port) {
			return true
		}
	}
	return false
}

// Tiered reports whether ClusterNetworkPolicy rules take part in the
// profile's decision.
func (p *Profile) Tiered() bool {
	return len(p.Admin) > 0 || len(p.Baseline) > 0 || p.NotIsolated
}

// Decide evaluates the profile over the tiers, exactly as the dataplane
// programs it: the admin rules in order (Accept and Deny decide, Pass skips
// to the next part); then, when a NetworkPolicy isolates the pods, the
// NetworkPolicy part (Any and Ports), except that an egress profile always
// allows the node's own addresses there (node); otherwise the baseline rules
// (Accept and Pass allow, Deny denies) and finally allow.
func (p *Profile) Decide(peer netip.Addr, proto Protocol, port uint16, node bool) (bool, *TierRule) {
	for _, r := range p.Admin {
		if !r.Covers(peer, proto, port) {
			continue
		}
		if r.Action == Pass {
			break
		}
		return r.Action == Accept, r
	}
	if !p.NotIsolated {
		return node || p.Allows(peer, proto, port), nil
	}
	for _, r := range p.Baseline {
		if r.Covers(peer, proto, port) {
			return r.Action != Deny, r
		}
	}
	return true, nil
}
