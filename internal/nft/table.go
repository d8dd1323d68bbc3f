package nft

import (
	"fmt"

	"bytes"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/addrset"
)

// TableName is the name of the one table kube-fence owns, in the inet family
// so a single rule set covers IPv4 and IPv6.
const TableName = "kube-fence"

// Table is the content of kube-fence's table: what we want, or what the
// kernel holds. Two Tables with the same content compare equal under Diff
// whatever the order they were built in.
type Table struct {
	Chains map[string]*Chain
	Sets   map[string]*Set
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{Chains: map[string]*Chain{}, Sets: map[string]*Set{}}
}

// AddChain adds c, replacing any chain of the same name.
func (t *Table) AddChain(c *Chain) { t.Chains[c.Name] = c }

// AddSet adds s, replacing any set of the same name.
func (t *Table) AddSet(s *Set) { t.Sets[s.Name] = s }

// ChainNames returns the chain names with base chains first, then sorted, the
// order nft text and transactions use.
func (t *Table) ChainNames() []string {
	names := make([]string, 0, len(t.Chains))
	for n := range t.Chains {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ba, bb := t.Chains[a].Hook != nil, t.Chains[b].Hook != nil
		if ba != bb {
			if ba {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return names
}

// SetNames returns the set names sorted.
func (t *Table) SetNames() []string {
	names := make([]string, 0, len(t.Sets))
	for n := range t.Sets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Counts returns the number of chains, rules, sets and set elements, for
// metrics and logs.
func (t *Table) Counts() (chains, rules, sets, elements int) {
	for _, c := range t.Chains {
		rules += len(c.Rules)
	}
	for _, s := range t.Sets {
		elements += s.Len()
	}
	return len(t.Chains), rules, len(t.Sets), elements
}

// Chain is a chain and its rules in order.
type Chain struct {
	Name  string
	Hook  *Hook // nil for a regular chain reached by jump, goto or verdict map
	Rules []Rule
}

// Hook makes a chain a base chain.
type Hook struct {
	Hook     HookPoint
	Priority int32
	Policy   string // "accept" or "drop"
	// Type is the chain type; empty means filter, the only type
	// kube-fence creates. A read back sets it when the kernel's is another.
	Type string
}

// HookPoint is a netfilter hook of the inet family; the values are the
// kernel's (NF_INET_*).
type HookPoint uint32

const (
	HookPrerouting  HookPoint = unix.NF_INET_PRE_ROUTING
	HookInput       HookPoint = unix.NF_INET_LOCAL_IN
	HookForward     HookPoint = unix.NF_INET_FORWARD
	HookOutput      HookPoint = unix.NF_INET_LOCAL_OUT
	HookPostrouting HookPoint = unix.NF_INET_POST_ROUTING
)

var hookNames = map[HookPoint]string{
	HookPrerouting: "prerouting", HookInput: "input", HookForward: "forward",
	HookOutput: "output", HookPostrouting: "postrouting",
}

// Known reports whether h is one of the five hooks.
func (h HookPoint) Known() bool { _, ok := hookNames[h]; return ok }

func (h HookPoint) String() string {
	if n, ok := hookNames[h]; ok {
		return n
	}
	return fmt.Sprintf("hook-%d", uint32(h))
}

// Rule is one rule: expressions as the kernel runs them, and for rules we
// build, the same rule as nft prints it.
type Rule struct {
	Exprs   []expr.Any
	Comment string
	Text    string // empty for rules read back from the kernel
}

// SetType is the key (and data) of a set kube-fence uses. The table needs
// only these shapes.
type SetType uint8

const (
	// Addr4 and Addr6 are interval sets of addresses (peers, pod CIDRs).
	Addr4 SetType = iota + 1
	Addr6
	// PodMap4 and PodMap6 are verdict maps keyed by a pod address.
	PodMap4
	PodMap6
	// PortMap is an interval verdict map keyed by protocol . port.
	PortMap
	// PortSet is an interval set of protocol . port, the ports of a
	// ClusterNetworkPolicy rule.
	PortSet
	// Host4 and Host6 are hash sets of single addresses: one lookup
	// whatever their size, where an interval set is a binary search.
	Host4
	Host6
)

// Family returns 4 or 6 for address-keyed types, 0 otherwise.
func (t SetType) Family() int {
	switch t {
	case Addr4, PodMap4, Host4:
		return 4
	case Addr6, PodMap6, Host6:
		return 6
	}
	return 0
}

// IsMap reports whether elements carry a verdict.
func (t SetType) IsMap() bool { return t == PodMap4 || t == PodMap6 || t == PortMap }

// IsInterval reports whether elements are ranges.
func (t SetType) IsInterval() bool { return t == Addr4 || t == Addr6 || t == PortMap || t == PortSet }

// Set is a named set or verdict map with its elements in canonical order.
type Set struct {
	Name  string
	Type  SetType
	Elems []Elem
	// Ranges holds the elements of an address set (Addr4, Addr6; Host4
	// and Host6, whose ranges are single addresses) instead
	// of Elems when the set was rendered from a plan: the plan's own
	// ranges, shared rather than copied, since a node's table holds about
	// 110,000 of them at 10k pods. Elements returns the elements either
	// way.
	Ranges []addrset.Range
}

// Elements returns the set's elements in canonical order. For a set
// rendered from ranges they are made on each call.
func (s *Set) Elements() []Elem {
	if s.Ranges != nil {
		es := rangeElems(s.Ranges)
		if s.Type == Host4 || s.Type == Host6 {
			for i := range es {
				es[i].KeyEnd = nil
			}
		}
		return es
	}
	return s.Elems
}

// Len returns the number of elements.
func (s *Set) Len() int {
	if s.Ranges != nil {
		return len(s.Ranges)
	}
	return len(s.Elems)
}

// Elem is one element. For interval types Key is the first and KeyEnd the
// last key of the range (inclusive); for exact types KeyEnd is nil.
type Elem struct {
	Key, KeyEnd []byte
	Verdict     *Verdict // nil for plain sets
	Comment     string
}

// Verdict is where a verdict map element sends the packet.
type Verdict struct {
	Kind  expr.VerdictKind
	Chain string // for jump and goto
}

// SortElems puts elements in canonical order (by key).
func SortElems(es []Elem) {
	slices.SortFunc(es, func(a, b Elem) int { return bytes.Compare(a.Key, b.Key) })
}
