package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// resolution is how one pod resolves the named ports its ingress policies
// use: for each (name, protocol), the numbers it serves under that name
// (none when it does not serve it).
type resolution struct {
	names []portName
	ports [][]uint16 // sorted, parallel to names
}

// resolveIngressNames resolves, against the pod's own container ports, every
// named port used by the ingress rules of the policies selecting it.
func (c *compiler) resolveIngressNames(lp *localPod) *resolution {
	res := &resolution{}
	declared := declaredNames(lp.pod)
	for _, cp := range lp.ingress {
		for _, r := range cp.ingress {
			for _, ps := range r.ports {
				n := portName{ps.name, ps.proto}
				if ps.name == "" || slices.Contains(res.names, n) {
					continue
				}
				var nums []uint16
				for _, d := range declared {
					if d.portName == n {
						nums = append(nums, d.port)
					}
				}
				slices.Sort(nums)
				res.names = append(res.names, n)
				res.ports = append(res.ports, nums)
			}
		}
	}
	return res
}

// numbers returns the numbers n resolves to.
func (r *resolution) numbers(n portName) []uint16 {
	if r == nil {
		return nil
	}
	if i := slices.Index(r.names, n); i >= 0 {
		return r.ports[i]
	}
	return nil
}

// canonical renders the resolution independently of the order policies and
// rules mention the names in.
func (r *resolution) canonical() string {
	if r == nil || len(r.names) == 0 {
		return ""
	}
	parts := make([]string, len(r.names))
	for i, n := range r.names {
		nums := make([]string, len(r.ports[i]))
		for j, p := range r.ports[i] {
			nums[j] = strconv.Itoa(int(p))
		}
		parts[i] = n.name + "/" + n.proto.String() + "=" + strings.Join(nums, ",")
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

// profileCanonical is the string a profile ID is derived from: the direction,
// the policies and the named-port resolution, nothing about content, so peers
// coming and going change a profile's sets but never its name.
func profileCanonical(dir plan.Direction, policies []string, resolution string) string {
	return dir.String() + "\x00" + strings.Join(policies, "\x00") + "\x00\x00" + resolution
}

// profileID is "i" or "e" and 12 hex digits of the SHA-256 of canonical: short
// enough for nftables chain names, and 48 bits make a collision between the
// few thousand profiles of a node negligible.
func profileID(canonical string, dir plan.Direction) plan.ProfileID {
	sum := sha256.Sum256([]byte(canonical))
	prefix := "i"
	if dir == plan.Egress {
		prefix = "e"
	}
	return plan.ProfileID(prefix + hex.EncodeToString(sum[:6]))
}

// portEntry is the peers one rule allows on a port range, before the ranges
// of all rules are partitioned.
type portEntry struct {
	proto       plan.Protocol
	first, last uint16
	peers       setID
	parts       []part // what peers is the union of
}

// buildProfile unions the rules of the policies in one direction.
func (c *compiler) buildProfile(dir plan.Direction, pols []*compiledPolicy, res *resolution) *plan.Profile {
	var anyIDs []setID
	var anyParts []part
	var entries []portEntry
	for _, cp := range pols {
		rules := cp.ingress
		if dir == plan.Egress {
			rules = cp.egress
		}
		for _, r := range rules {
			if r.dead {
				continue
			}
			if r.allPorts {
				anyIDs = append(anyIDs, r.peerSet)
				anyParts = append(anyParts, r.parts...)
				continue
			}
			for _, ps := range r.ports {
				entries = c.appendEntries(entries, dir, r, ps, res)
			}
		}
	}
	if c.deps != nil {
		c.deps.inputs = append(c.deps.inputs, anyIDs...)
		for _, pt := range anyParts {
			c.deps.inputs = append(c.deps.inputs, pt.id)
		}
		for _, e := range entries {
			c.deps.inputs = append(c.deps.inputs, e.peers)
			for _, pt := range e.parts {
				c.deps.inputs = append(c.deps.inputs, pt.id)
			}
		}
	}
	anySet := c.sets.union(anyIDs)
	return &plan.Profile{Direction: dir, Any: c.sets.planSet(anySet), AnyParts: c.peerSets(anyParts),
		Ports: c.partition(entries, anySet)}
}

// appendEntries adds what one port of one rule allows. Numeric ports allow
// the rule's peers; named ports resolve against the selected pod for ingress
// and against each destination pod for egress.
func (c *compiler) appendEntries(entries []portEntry, dir plan.Direction, r *compiledRule, ps portSpec, res *resolution) []portEntry {
	if ps.name == "" {
		return append(entries, portEntry{ps.proto, ps.first, ps.last, r.peerSet, r.parts})
	}
	n := portName{ps.name, ps.proto}
	if dir == plan.Ingress {
		for _, num := range res.numbers(n) {
			entries = append(entries, portEntry{ps.proto, num, num, r.peerSet, r.parts})
		}
		return entries
	}
	for num, parts := range c.egressNamed(r, n) {
		ids := make([]setID, len(parts))
		for i, pt := range parts {
			ids[i] = pt.id
		}
		entries = append(entries, portEntry{ps.proto, num, num, c.sets.union(ids), parts})
	}
	return entries
}

// partition turns overlapping entries into disjoint classes per protocol,
// each with the union of the peers of the entries covering it, minus the
// peers already allowed on every port. Classes left empty are dropped and
// neighbours with equal peers merged, so the same decision always yields the
// same classes. A merged class keeps the parts of its first range: their
// union less Any is the peers of the whole range.
func (c *compiler) partition(entries []portEntry, anySet setID) []plan.PortClass {
	var out []plan.PortClass
	var last setID
	for _, proto := range []plan.Protocol{plan.TCP, plan.UDP, plan.SCTP} {
		var cuts []int
		for _, e := range entries {
			if e.proto == proto {
				cuts = append(cuts, int(e.first), int(e.last)+1)
			}
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		for i := 0; i+1 < len(cuts); i++ {
			first, end := cuts[i], cuts[i+1]-1
			var covering []setID
			var parts []part
			for _, e := range entries {
				if e.proto == proto && int(e.first) <= first && int(e.last) >= end {
					covering = append(covering, e.peers)
					parts = append(parts, e.parts...)
				}
			}
			peers := c.sets.subtract(c.sets.union(covering), anySet)
			if c.sets.get(peers).IsEmpty() {
				continue
			}
			if n := len(out); n > 0 && out[n-1].Protocol == proto && int(out[n-1].Last)+1 == first &&
				(last == peers || c.sets.get(last).Equal(c.sets.get(peers))) {
				out[n-1].Last = uint16(end)
				continue
			}
			out = append(out, plan.PortClass{Protocol: proto, First: uint16(first), Last: uint16(end),
				Peers: c.sets.planSet(peers), Parts: c.peerSets(parts)})
			last = peers
		}
	}
	return out
}
