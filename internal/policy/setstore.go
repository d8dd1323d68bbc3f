package policy

import (
	"slices"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// setID names an address set interned in a setStore.
type setID int32

// setStore interns the address sets of one compile and memoizes unions and
// differences by the identities of their operands. Profiles of one node
// share most of their rules, so most of their unions have been computed
// before; the store turns that repeated set algebra, most of the
// compiler's time otherwise, into map lookups.
type setStore struct {
	sets   []spans
	unions map[string]setID
	minus  map[[2]setID]setID
	out    map[setID]addrset.Set // converted for the plan
	key    []byte                // scratch
}

// emptySet is always interned first.
const emptySet setID = 0

func newSetStore() *setStore {
	return &setStore{
		sets:   []spans{{}},
		unions: map[string]setID{},
		minus:  map[[2]setID]setID{},
		out:    map[setID]addrset.Set{},
	}
}

func (st *setStore) intern(s spans) setID {
	if s.isEmpty() {
		return emptySet
	}
	st.sets = append(st.sets, s)
	return setID(len(st.sets) - 1)
}

func (st *setStore) get(id setID) spans { return st.sets[id] }

// planSet returns the set in the plan's form, converting each set once.
func (st *setStore) planSet(id setID) addrset.Set {
	if s, ok := st.out[id]; ok {
		return s
	}
	s := st.sets[id].toSet()
	st.out[id] = s
	return s
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
	sets := make([]spans, len(ids))
	for i, id := range ids {
		sets[i] = st.sets[id]
	}
	out := st.intern(unionSpans(sets))
	st.unions[string(st.key)] = out
	return out
}

// subtract returns the addresses of a that are not in b.
func (st *setStore) subtract(a, b setID) setID {
	if a == emptySet || b == emptySet || a == b {
		if a == b {
			return emptySet
		}
		return a
	}
	k := [2]setID{a, b}
	if id, ok := st.minus[k]; ok {
		return id
	}
	out := st.intern(subtractSpans(st.sets[a], st.sets[b]))
	st.minus[k] = out
	return out
}
