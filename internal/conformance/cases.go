package conformance

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Case is one connectivity test: steps applied in order to the same lab,
// each followed by probing the full matrix.
type Case struct {
	// Name is the upstream test's name (the text of its It), or for
	// kube-fence's own extra cases a sentence saying what is tested.
	Name string
	// Group is the upstream context the case comes from: TCP, UDP, SCTP, or
	// Extra for kube-fence's own cases.
	Group string
	Steps []Step
}

// Step changes the cluster, then checks the truth tables it states.
type Step struct {
	// Action says what the step changes, as a user would say it.
	Action string
	// Change edits the desired state; nil changes nothing.
	Change func(s *State) error
	// Checks are the upstream expectations of this step. Probes of any
	// other protocol and port are expected to agree with the reference
	// evaluator.
	Checks []Check
}

// Check is an expected truth table for one protocol and port, over both
// address families.
type Check struct {
	Protocol corev1.Protocol
	Port     int32
	// Expect edits a table that starts with every pair connected.
	Expect func(r *Reach)
}

// Groups of cases.
const (
	GroupTCP   = "TCP"
	GroupUDP   = "UDP"
	GroupSCTP  = "SCTP"
	GroupExtra = "Extra"
)

func apply(nps ...*networkingv1.NetworkPolicy) func(s *State) error {
	return func(s *State) error {
		for _, np := range nps {
			s.Apply(np)
		}
		return nil
	}
}

func check(proto corev1.Protocol, port int32, expect func(r *Reach)) Check {
	if expect == nil {
		expect = func(*Reach) {}
	}
	return Check{Protocol: proto, Port: port, Expect: expect}
}

func tcp(port int32, expect func(r *Reach)) Check {
	return check(corev1.ProtocolTCP, port, expect)
}

// hostBlocks returns one ipBlock peer per address of a pod, each the
// address alone (/32, /128).
func hostBlocks(ips []netip.Addr) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for _, ip := range ips {
		out = append(out, BlockPeer(netip.PrefixFrom(ip, ip.BitLen()).String()))
	}
	return out
}

// wideBlocksExcept returns, per address of a pod, an ipBlock of the /4
// holding it with the address itself excepted, as upstream's except cases
// build theirs.
func wideBlocksExcept(ips []netip.Addr) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for _, ip := range ips {
		wide := netip.PrefixFrom(ip, 4).Masked()
		out = append(out, BlockPeer(wide.String(), netip.PrefixFrom(ip, ip.BitLen()).String()))
	}
	return out
}
