package plan

import "net/netip"

// holds reports whether addr is one of the pod's. Traffic between a pod's
// own addresses never leaves its network namespace, so no dataplane sees it.
func (p *LocalPod) holds(addr netip.Addr) bool {
	for _, ip := range p.IPs {
		if ip == addr {
			return true
		}
	}
	return false
}

// LocalPod returns the local pod holding addr, or nil. It scans the pods,
// which is fine for the hundred or so pods of a node in tests.
func (pl *Plan) LocalPod(addr netip.Addr) *LocalPod {
	for i := range pl.Pods {
		for _, ip := range pl.Pods[i].IPs {
			if ip == addr {
				return &pl.Pods[i]
			}
		}
	}
	return nil
}

// AllowsEgress reports whether the plan lets a connection leave src, an
// address on this node, towards dst, exactly as the dataplane must program
// it:
//   - src is not a local pod: allowed, unless DefaultDenyUnknown is set and
//     src lies in the node's pod CIDRs (a pod the snapshot does not know yet);
//   - src is not isolated for egress (no NetworkPolicy or
//     ClusterNetworkPolicy applies): allowed, and so is an address of src's
//     own pod;
//   - otherwise its egress profile decides (Profile.Decide); dst being an
//     address of this node is always allowed by the NetworkPolicy part (a
//     pod may always talk to its own node), but not by the admin and
//     baseline rules, which the dataplane runs for such traffic too (input
//     hook). A profile ID that names no profile denies all but the node.
func (pl *Plan) AllowsEgress(src, dst netip.Addr, proto Protocol, port uint16) bool {
	lp := pl.LocalPod(src)
	if lp == nil {
		return pl.NodeAddrs.Contains(dst) || !pl.unknownPod(src)
	}
	if lp.Egress == "" || lp.holds(dst) {
		return true
	}
	p := pl.Profile(lp.Egress)
	node := pl.NodeAddrs.Contains(dst)
	switch {
	case p == nil:
		return node
	case !p.Tiered():
		return node || p.Allows(dst, proto, port)
	}
	ok, _ := p.Decide(dst, proto, port, node)
	return ok
}

// AllowsIngress reports whether the plan lets a connection from src reach
// dst, an address on this node. The rules mirror AllowsEgress: traffic from
// the node's own addresses is always allowed, unknown addresses in the pod
// CIDRs are denied when DefaultDenyUnknown is set, and an isolated pod's
// ingress profile decides the rest (a missing profile denies: the plan is
// inconsistent, and closed is the safe way to be wrong).
func (pl *Plan) AllowsIngress(src, dst netip.Addr, proto Protocol, port uint16) bool {
	lp := pl.LocalPod(dst)
	if lp == nil {
		return pl.NodeAddrs.Contains(src) || !pl.unknownPod(dst)
	}
	if pl.NodeAddrs.Contains(src) || lp.Ingress == "" || lp.holds(src) {
		return true
	}
	p := pl.Profile(lp.Ingress)
	if p == nil {
		return false
	}
	ok, _ := p.Decide(src, proto, port, false)
	return ok
}

// unknownPod reports whether addr must be treated as a pod not known yet.
func (pl *Plan) unknownPod(addr netip.Addr) bool {
	return pl.DefaultDenyUnknown && pl.PodCIDRs.Contains(addr)
}
