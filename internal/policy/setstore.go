package policy

import (
	"container/heap"
	"net/netip"
	"slices"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// setID names an address set held in a setStore.
type setID int32

// setStore holds the address sets of a compiler and memoizes unions and
// differences by the identities of their operands. Profiles of one node
// share most of their rules, so most of their unions have been computed
// before; the store turns that repeated set algebra, most of the
// compiler's time otherwise, into map lookups.
//
// The store is also what makes the Compiler incremental: every set is a
// node of a graph, a leaf (the pods a peer selects, an ipBlock) or the
// union or difference of earlier nodes, and a set keeps its ID when its
// content changes. When a change can only alter whether some addresses are
// members (a pod's own addresses when the pod changes), the leaves are
// patched at those points and the points are pushed through the graph
// (update), so every memo stays valid and unchanged sets stay the same
// values.
type setStore struct {
	nodes  []setNode
	unions map[string]setID
	minus  map[[2]setID]setID
	key    []byte // scratch
	// gen counts updates; a node's ver is the gen of its last change.
	gen uint64
}

type setOp uint8

const (
	opLeaf setOp = iota
	opUnion
	opMinus // args[0] minus args[1]
)

type setNode struct {
	sp    addrset.Spans
	op    setOp
	args  []setID
	users []setID // nodes computed from this one
	ver   uint64
	// The plan's form of sp, converted on demand and kept while sp is.
	plan    addrset.Set
	planVer uint64
	planned bool
}

// emptySet is always interned first and never changes.
const emptySet setID = 0

func newSetStore() *setStore {
	return &setStore{
		nodes:  []setNode{{}},
		unions: map[string]setID{},
		minus:  map[[2]setID]setID{},
	}
}

// intern adds a set that never changes (an ipBlock, every address).
func (st *setStore) intern(s addrset.Spans) setID {
	if s.IsEmpty() {
		return emptySet
	}
	return st.add(setNode{sp: s})
}

// leaf adds a set that patch may change later, even when it starts empty.
func (st *setStore) leaf(s addrset.Spans) setID { return st.add(setNode{sp: s}) }

func (st *setStore) add(n setNode) setID {
	n.ver = st.gen
	st.nodes = append(st.nodes, n)
	id := setID(len(st.nodes) - 1)
	for _, a := range n.args {
		st.nodes[a].users = append(st.nodes[a].users, id)
	}
	return id
}

func (st *setStore) get(id setID) addrset.Spans { return st.nodes[id].sp }

// size is the number of sets held, a measure of what incremental updates
// have left behind.
func (st *setStore) size() int { return len(st.nodes) }

// planSet returns the set in the plan's form, converting each content once:
// a set an update did not touch is the same addrset.Set value as before.
func (st *setStore) planSet(id setID) addrset.Set {
	n := &st.nodes[id]
	if !n.planned || n.planVer != n.ver {
		n.plan, n.planVer, n.planned = n.sp.Set(), n.ver, true
	}
	return n.plan
}

// union returns the union of the sets; ids is not modified.
func (st *setStore) union(ids []setID) setID {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > 0 && ids[0] == emptySet {
		ids = ids[1:]
	}
	switch len(ids) {
	case 0:
		return emptySet
	case 1:
		return ids[0]
	}
	st.key = st.key[:0]
	for _, id := range ids {
		st.key = append(st.key, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	}
	if id, ok := st.unions[string(st.key)]; ok {
		return id
	}
	sets := make([]addrset.Spans, len(ids))
	for i, id := range ids {
		sets[i] = st.nodes[id].sp
	}
	out := st.add(setNode{sp: addrset.UnionSpans(sets), op: opUnion, args: ids})
	st.unions[string(st.key)] = out
	return out
}

// subtract returns the addresses of a that are not in b.
func (st *setStore) subtract(a, b setID) setID {
	switch {
	case a == b:
		return emptySet
	case a == emptySet || b == emptySet:
		return a
	}
	k := [2]setID{a, b}
	if id, ok := st.minus[k]; ok {
		return id
	}
	out := st.add(setNode{sp: addrset.SubtractSpans(st.nodes[a].sp, st.nodes[b].sp), op: opMinus, args: []setID{a, b}})
	st.minus[k] = out
	return out
}

// point is one address whose membership an update re-decides.
type point struct {
	key addrset.Key
	v4  bool
}

func pointOf(a netip.Addr) point { return point{addrset.KeyOf(a), a.Is4()} }

func comparePoints(a, b point) int {
	if a.v4 != b.v4 {
		if a.v4 {
			return -1
		}
		return 1
	}
	return a.key.Compare(b.key)
}

// update re-decides the membership of the given points: first in the
// leaves, through member, then in every set computed from a leaf that
// changed, in the order the sets were made (operands always come first).
// Only points listed for a leaf can change in it, and only points that
// changed in an operand can change in a union or difference.
func (st *setStore) update(leaves map[setID][]point, member func(setID, point) bool) {
	st.gen++
	pending := map[setID][]point{}
	var queue idHeap
	for id, pts := range leaves {
		if id == emptySet {
			continue
		}
		if changed := st.decide(id, pts, func(p point) bool { return member(id, p) }); len(changed) > 0 {
			st.notify(id, changed, pending, &queue)
		}
	}
	for queue.Len() > 0 {
		id := heap.Pop(&queue).(setID)
		pts := pending[id]
		delete(pending, id)
		slices.SortFunc(pts, comparePoints)
		pts = slices.Compact(pts)
		n := &st.nodes[id]
		var in func(point) bool
		switch n.op {
		case opUnion:
			in = func(p point) bool {
				for _, a := range n.args {
					if st.nodes[a].sp.Contains(p.key, p.v4) {
						return true
					}
				}
				return false
			}
		case opMinus:
			a, b := &st.nodes[n.args[0]], &st.nodes[n.args[1]]
			in = func(p point) bool { return a.sp.Contains(p.key, p.v4) && !b.sp.Contains(p.key, p.v4) }
		default:
			continue
		}
		if changed := st.decide(id, pts, in); len(changed) > 0 {
			st.notify(id, changed, pending, &queue)
		}
	}
}

// decide sets the membership of pts in node id to what in says and returns
// the points that changed.
func (st *setStore) decide(id setID, pts []point, in func(point) bool) []point {
	n := &st.nodes[id]
	var add, del addrset.PointBuilder
	var changed []point
	for _, p := range pts {
		want := in(p)
		if want == n.sp.Contains(p.key, p.v4) {
			continue
		}
		changed = append(changed, p)
		if want {
			add.AddKey(p.key, p.v4)
		} else {
			del.AddKey(p.key, p.v4)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	sp := n.sp
	if a := add.Build(); !a.IsEmpty() {
		sp = addrset.UnionSpans([]addrset.Spans{sp, a})
	}
	if d := del.Build(); !d.IsEmpty() {
		sp = addrset.SubtractSpans(sp, d)
	}
	n.sp = sp.Clip()
	n.ver = st.gen
	return changed
}

func (st *setStore) notify(id setID, changed []point, pending map[setID][]point, queue *idHeap) {
	for _, u := range st.nodes[id].users {
		if _, queued := pending[u]; !queued {
			heap.Push(queue, u)
		}
		pending[u] = append(pending[u], changed...)
	}
}

// changedSince reports whether set id changed in an update after gen.
func (st *setStore) changedSince(id setID, gen uint64) bool { return st.nodes[id].ver > gen }

type idHeap []setID

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(setID)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
