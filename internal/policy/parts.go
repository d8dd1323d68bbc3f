package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/kube-fence/kube-fence/internal/plan"
)

// Peer parts. A profile's unions (Any, each port class's peers) are made of
// peers that many profiles share: the pods of one selector, an ipBlock.
// The plan names each such peer by what it means, so the dataplane can hold
// one copy of its addresses for every profile, and a policy whose peers
// exist already adds no addresses at all.

// part is one peer of a union: its key and its set.
type part struct {
	key string
	id  setID
}

// allKey is the key of the set of every address (a rule without peers).
var allKey = peerKey("all")

// peerKey is 12 hex digits of the SHA-256 of a peer's meaning (its memo in
// compiler.peers): short enough for set names, and 48 bits make a
// collision among the few thousand peers of a cluster negligible.
func peerKey(meaning string) string {
	sum := sha256.Sum256([]byte(meaning))
	return hex.EncodeToString(sum[:6])
}

// namedPartKey is the key of the pods of p (nil: every pod) serving the
// named port n on num.
func namedPartKey(p *peer, n portName, num uint16) string {
	of := "all-pods"
	if p != nil {
		of = p.key
	}
	return peerKey("named\x00" + of + "\x00" + n.name + "/" + n.proto.String() + "=" + strconv.Itoa(int(num)))
}

// peerSets returns the plan's form of parts: sorted by key, each key once,
// without the empty ones. Those would cost a rule and allow nothing, and an
// incremental Compiler keeps empty sets Compile does not make (a named port
// number nobody serves any more).
func (c *compiler) peerSets(parts []part) []plan.PeerSet {
	if len(parts) == 0 {
		return nil
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b part) int { return cmp.Compare(a.key, b.key) })
	parts = slices.CompactFunc(parts, func(a, b part) bool { return a.key == b.key })
	out := make([]plan.PeerSet, 0, len(parts))
	for _, pt := range parts {
		if c.sets.get(pt.id).IsEmpty() {
			continue
		}
		out = append(out, plan.PeerSet{Key: pt.key, Addrs: c.sets.planSet(pt.id)})
	}
	return out
}
