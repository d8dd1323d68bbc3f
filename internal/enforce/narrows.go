package enforce

import (
	"slices"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// narrows reports whether next may deny a connection that prev allowed:
// whether committing next can leave an open connection that must be cut.
// The cut dumps the whole conntrack table (tens of thousands of entries on
// a busy node, the API server's own on a control-plane node), and a burst
// of policies that only allow more (1,000 policies selecting one pod, each
// adding a port) would pay that dump after every one of its syncs. It
// answers false only when it can show that every flow prev allows, next
// allows too: the same node, the same pods with the same addresses, no pod
// newly isolated, and every changed profile allowing at least what it did,
// without the admin and baseline tiers (whose order decides; any change
// there counts as narrowing). Anything else counts as narrowing, so a cut
// runs as before.
func narrows(prev, next *plan.Plan) bool {
	if prev == nil || next == nil || prev.DefaultDenyUnknown != next.DefaultDenyUnknown ||
		!prev.NodeAddrs.Equal(next.NodeAddrs) || !prev.PodCIDRs.Equal(next.PodCIDRs) || len(prev.Pods) != len(next.Pods) {
		return true
	}
	for i := range prev.Pods {
		a, b := &prev.Pods[i], &next.Pods[i]
		if a.Key() != b.Key() || !slices.Equal(a.IPs, b.IPs) ||
			narrowsSide(prev, next, a.Ingress, b.Ingress) || narrowsSide(prev, next, a.Egress, b.Egress) {
			return true
		}
	}
	return false
}

// narrowsSide reports whether a pod's side, decided by profile was in prev
// and is in next ("" for not isolated), may deny a flow it allowed.
func narrowsSide(prev, next *plan.Plan, was, is plan.ProfileID) bool {
	switch {
	case is == "":
		return false // not isolated: everything is allowed
	case was == "":
		return true // newly isolated
	}
	a, b := prev.Profile(was), next.Profile(is)
	switch {
	case a == b:
		return false // the same profile, untouched (or both missing: both deny)
	case a == nil:
		return false // prev denied all the profile could decide
	case b == nil || a.Tiered() || b.Tiered():
		return true
	}
	return !covers(b, a)
}

// covers reports whether profile b allows every peer, protocol and port
// that a allows.
func covers(b, a *plan.Profile) bool {
	if !subset(a.Any, b.Any) {
		return false
	}
	for _, c := range a.Ports {
		need := c.Peers.Subtract(b.Any) // what b's port classes must allow on every port of c
		if need.IsEmpty() {
			continue
		}
		// b's classes are disjoint and sorted: those of c's protocol must
		// cover c's ports without a gap, each allowing need.
		next := int(c.First)
		for _, d := range b.Ports {
			if d.Protocol != c.Protocol || int(d.Last) < next {
				continue
			}
			if int(d.First) > next || !subset(need, d.Peers) {
				return false
			}
			next = int(d.Last) + 1
			if next > int(c.Last) {
				break
			}
		}
		if next <= int(c.Last) {
			return false
		}
	}
	return true
}

func subset(a, b addrset.Set) bool { return a.Subtract(b).IsEmpty() }
