package policy

import (
	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
)

// namedKey names the egress resolution of one named port for one peer
// (nil: every enforceable pod).
type namedKey struct {
	peer *peer
	name portName
}

// namedMap is a named port resolved for one peer: for each port number, the
// set of the addresses of the peer's pods that serve the name on it. A
// Compiler adds numbers as pods start serving them and keeps each set up to
// date; a number nobody serves any more keeps an empty set, which allows
// nothing.
type namedMap struct {
	peer *peer
	name portName
	nums map[uint16]setID
	ver  uint64 // changes when nums gains a number
}

// leafDef says what a set that a Compiler may change stands for: the pods a
// selector peer picks, or the pods of a named map's peer serving its name on
// one number.
type leafDef struct {
	peer  *peer
	named *namedMap
	num   uint16
}

// egressNamed resolves a named port of an egress rule against its
// destinations: for each port number, the addresses of the destination pods
// that serve the name on that number, one part per peer of the rule.
// Addresses that belong to no enforceable pod never match a named port,
// whatever the ipBlock says.
func (c *compiler) egressNamed(r *compiledRule, n portName) map[uint16][]part {
	peers := r.peers
	if r.allPeers {
		peers = []*peer{nil}
	}
	perPort := map[uint16][]part{}
	for _, p := range peers {
		for num, set := range c.namedFor(p, n) {
			perPort[num] = append(perPort[num], part{namedPartKey(p, n, num), set})
		}
	}
	return perPort
}

// namedFor resolves n for one peer: a selector peer's own pods, the pods
// whose addresses lie in an ipBlock (only those addresses), or, for a nil
// peer, every enforceable pod.
func (c *compiler) namedFor(p *peer, n portName) map[uint16]setID {
	key := namedKey{peer: p, name: n}
	nm := c.named[key]
	if nm == nil {
		nm = c.resolveNamed(p, n)
		c.named[key] = nm
		c.namedByName[n.name] = append(c.namedByName[n.name], nm)
		if p != nil {
			p.named = append(p.named, nm)
		}
	}
	if c.deps != nil {
		c.deps.maps = append(c.deps.maps, nm)
		c.deps.mapVers = append(c.deps.mapVers, nm.ver)
	}
	return nm.nums
}

func (c *compiler) resolveNamed(p *peer, n portName) *namedMap {
	perPort := map[uint16]*addrset.PointBuilder{}
	add := func(num uint16, sa servingAddr) {
		b := perPort[num]
		if b == nil {
			b = &addrset.PointBuilder{}
			perPort[num] = b
		}
		b.AddKey(sa.key, sa.v4)
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
			if p.addrs.Contains(sa.key, sa.v4) {
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
						add(num, servingAddr{key: addrset.KeyOf(ip), v4: ip.Is4()})
					}
				}
			}
		}
	}
	nm := &namedMap{peer: p, name: n, nums: make(map[uint16]setID, len(perPort))}
	for num, b := range perPort {
		nm.addNum(c, num, b.Build())
	}
	return nm
}

// addNum gives the map a set for num.
func (nm *namedMap) addNum(c *compiler, num uint16, s addrset.Spans) setID {
	id := c.sets.leaf(s)
	c.leaves[id] = leafDef{named: nm, num: num}
	nm.nums[num] = id
	c.version++
	nm.ver = c.version
	return id
}

// serves reports whether pod declares the named port n on num.
func serves(pod *cluster.Pod, n portName, num uint16) bool {
	for _, cp := range pod.Ports {
		if m, k, ok := namedContainerPort(cp); ok && m == n && k == num {
			return true
		}
	}
	return false
}
