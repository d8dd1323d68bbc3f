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
//   - dst is an address of this node: allowed (a pod may always talk to its
//     own node), and so is an address of src's own pod;
//   - src is not isolated for egress: allowed;
//   - otherwise its egress profile decides.
func (pl *Plan) AllowsEgress(src, dst netip.Addr, proto Protocol, port uint16) bool {
	lp := pl.LocalPod(src)
	if lp == nil {
		return pl.NodeAddrs.Contains(dst) || !pl.unknownPod(src)
	}
	if pl.NodeAddrs.Contains(dst) || lp.Egress == "" || lp.holds(dst) {
		return true
	}
	return pl.decide(lp.Egress, dst, proto, port)
}

// AllowsIngress reports whether the plan lets a connection from src reach
// dst, an address on this node. The rules mirror AllowsEgress: traffic from
// the node's own addresses is always allowed, unknown addresses in the pod
// CIDRs are denied when DefaultDenyUnknown is set, and an isolated pod's
// ingress profile decides the rest.
func (pl *Plan) AllowsIngress(src, dst netip.Addr, proto Protocol, port uint16) bool {
	lp := pl.LocalPod(dst)
	if lp == nil {
		return pl.NodeAddrs.Contains(src) || !pl.unknownPod(dst)
	}
	if pl.NodeAddrs.Contains(src) || lp.Ingress == "" || lp.holds(src) {
		return true
	}
	return pl.decide(lp.Ingress, src, proto, port)
}

// unknownPod reports whether addr must be treated as a pod not known yet.
func (pl *Plan) unknownPod(addr netip.Addr) bool {
	return pl.DefaultDenyUnknown && pl.PodCIDRs.Contains(addr)
}

// decide applies a profile. A profile ID that names no profile denies: the
// plan is inconsistent, and closed is the safe way to be wrong.
func (pl *Plan) decide(id ProfileID, peer netip.Addr, proto Protocol, port uint16) bool {
	p := pl.Profile(id)
	return p != nil && p.Allows(peer, proto, port)
}
