package policy

// namedKey memoizes the egress resolution of one named port for one peer
// (nil: every enforceable pod) or one rule.
type namedKey struct {
	peer *peer
	rule *compiledRule
	name portName
}

// egressNamed resolves a named port of an egress rule against its
// destinations: for each port number, the addresses of the destination pods
// that serve the name on that number. Addresses that belong to no
// enforceable pod never match a named port, whatever the ipBlock says.
func (c *compiler) egressNamed(r *compiledRule, n portName) map[uint16]setID {
	if r.allPeers {
		return c.namedFor(nil, n)
	}
	if len(r.peers) == 1 {
		return c.namedFor(r.peers[0], n)
	}
	key := namedKey{rule: r, name: n}
	if m, ok := c.namedTargets[key]; ok {
		return m
	}
	perPort := map[uint16][]setID{}
	for _, p := range r.peers {
		for num, set := range c.namedFor(p, n) {
			perPort[num] = append(perPort[num], set)
		}
	}
	m := make(map[uint16]setID, len(perPort))
	for num, sets := range perPort {
		m[num] = c.sets.union(sets)
	}
	c.namedTargets[key] = m
	return m
}

// namedFor resolves n for one peer: a selector peer's own pods, the pods
// whose addresses lie in an ipBlock (only those addresses), or, for a nil
// peer, every enforceable pod.
func (c *compiler) namedFor(p *peer, n portName) map[uint16]setID {
	key := namedKey{peer: p, name: n}
	if m, ok := c.namedTargets[key]; ok {
		return m
	}
	perPort := map[uint16]*pointBuilder{}
	add := func(num uint16, sa servingAddr) {
		b := perPort[num]
		if b == nil {
			b = &pointBuilder{}
			perPort[num] = b
		}
		b.addKey(sa.key, sa.v4)
	}
	switch {
	case p == nil:
		for _, sa := range c.servingAddrs(n) {
			add(sa.port, sa)
		}
	case p.block:
		// A scan, not a sorted index: a node meets only a handful of
		// distinct blocks with named ports, and sorting every serving
		// address cost more than scanning them that often.
		for _, sa := range c.servingAddrs(n) {
			if p.addrs.contains(sa.key, sa.v4) {
				add(sa.port, sa)
			}
		}
	default:
		for _, pod := range p.pods {
			for i, cp := range pod.Ports {
				m, num, ok := namedContainerPort(cp)
				if !ok || m != n || declaredBefore(pod.Ports[:i], m, num) {
					continue
				}
				for _, ip := range pod.IPs {
					if ip.IsValid() {
						add(num, servingAddr{key: keyOf(ip), v4: ip.Is4()})
					}
				}
			}
		}
	}
	m := make(map[uint16]setID, len(perPort))
	for num, b := range perPort {
		m[num] = c.sets.intern(b.build())
	}
	c.namedTargets[key] = m
	return m
}
