package soak

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// A state is the cluster as the API server acknowledged it after one write.
type state struct {
	start, ack time.Time // the write began; the API server answered
	what       string
	snap       *cluster.Snapshot
	table      *nft.Table // what the agent must program for it
	committed  time.Time  // when the kernel first held this table or a later state's
	catchUp    bool       // written right after a fault: its latency is the fault's catch-up
}

// history is every state of the run, in the order of the writes.
type history struct {
	mu          sync.Mutex
	states      []*state
	uncommitted int // index of the first state the kernel has not held yet
	// pending is when the oldest write not yet recorded as a state began
	// (zero when none): what the API server holds since then is unknown.
	pending time.Time
}

// begin notes that a write starts at start.
func (h *history) begin(start time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending.IsZero() {
		h.pending = start
	}
}

// add records a state: the API server's answer, or what was read back
// after a failed write. Every write before it is accounted for.
func (h *history) add(s *state) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.states = append(h.states, s)
	h.pending = time.Time{}
}

func (h *history) last() *state {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.states[len(h.states)-1]
}

// window returns the states a probe running from t0 to t1 may have met in
// the kernel, if the agent keeps to bound: the one acknowledged last at or
// before t0-bound, and every one whose write began before t1 (a write
// counts from its start, since the agent may act on it before the client
// sees the answer).
// It returns nil while a write begun before t1 has no state yet (in
// flight, or failed and not yet read back): the probe proves nothing.
func (h *history) window(t0, t1 time.Time, bound time.Duration) []*state {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.pending.IsZero() && h.pending.Before(t1) {
		return nil
	}
	from := 0
	for i, s := range h.states {
		if !s.ack.After(t0.Add(-bound)) {
			from = i
		}
	}
	to := from
	for i := from; i < len(h.states); i++ {
		if h.states[i].start.Before(t1) {
			to = i
		}
	}
	return h.states[from : to+1]
}

// markCommitted records that the kernel held have at time at: the newest
// state not yet seen whose table it is, and every older one it replaced,
// are committed. It returns how many states it marked.
func (h *history) markCommitted(have *nft.Table, at time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	for j := len(h.states) - 1; j >= h.uncommitted; j-- {
		if nft.Diff(h.states[j].table, have).Empty() {
			n := j + 1 - h.uncommitted
			for k := h.uncommitted; k <= j; k++ {
				h.states[k].committed = at
			}
			h.uncommitted = j + 1
			return n
		}
	}
	return 0
}

// latencies returns, for every committed state after the first, the time
// from the API server's answer to the kernel holding it.
func (h *history) latencies() (out []time.Duration, pending int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.states[1:] {
		if s.catchUp {
			continue
		}
		if s.committed.IsZero() {
			pending++
			continue
		}
		out = append(out, max(0, s.committed.Sub(s.ack)))
	}
	return out, pending
}

// slowest returns the n states that took longest from the API server's
// answer to the kernel, with when they were written (from the first state).
func (h *history) slowest(n int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ss []*state
	for _, s := range h.states[1:] {
		if !s.catchUp && !s.committed.IsZero() {
			ss = append(ss, s)
		}
	}
	slices.SortFunc(ss, func(a, b *state) int { return cmp.Compare(b.committed.Sub(b.ack), a.committed.Sub(a.ack)) })
	var out []string
	for _, s := range ss[:min(n, len(ss))] {
		out = append(out, fmt.Sprintf("%v at %v (%s)", s.committed.Sub(s.ack).Round(time.Millisecond),
			s.ack.Sub(h.states[0].ack).Round(100*time.Millisecond), s.what))
	}
	return out
}

// newState renders what the agent must program for snap.
func newState(what string, start, ack time.Time, snap *cluster.Snapshot) *state {
	_, table := enforce.Preview(snap, nodeName, policy.Options{DefaultDenyUnknown: true}, nft.DropLog{})
	return &state{start: start, ack: ack, what: what, snap: snap, table: table}
}

// allowed is the reference verdict of a probe in snap: a pod that is not
// running with an address in the API is an unknown address of the node's
// pod CIDR, isolated both ways (--default-deny-unknown).
func allowed(snap *cluster.Snapshot, t lab.Target) bool {
	from, to := podByKey(snap, t.From), podByKey(snap, t.To)
	if from == nil || to == nil {
		return false
	}
	var src netip.Addr
	for _, ip := range from.IPs {
		if ip.Is4() == t.IP.Is4() {
			src = ip
		}
	}
	proto, _ := policy.ProtocolFromAPI(t.Protocol)
	return policy.Allowed(snap, policy.Endpoint{Pod: from, IP: src}, policy.Endpoint{Pod: to, IP: t.IP}, proto, uint16(t.Port))
}

func podByKey(snap *cluster.Snapshot, key string) *cluster.Pod {
	for _, p := range snap.Pods {
		if p.Key() == key && p.Enforceable() {
			return p
		}
	}
	return nil
}

// verdicts says whether every state of w allows t, and whether every one
// denies it.
func verdicts(w []*state, t lab.Target) (allAllow, allDeny bool) {
	if len(w) == 0 {
		return false, false
	}
	allAllow, allDeny = true, true
	for _, s := range w {
		if allowed(s.snap, t) {
			allDeny = false
		} else {
			allAllow = false
		}
	}
	return allAllow, allDeny
}

// snapshotOf builds the snapshot the agent sees from the objects as the API
// server returned them.
func snapshotOf(node *cluster.Node, nss []*cluster.Namespace, pods map[string]*cluster.Pod, pols map[string]*networkingv1.NetworkPolicy) *cluster.Snapshot {
	s := &cluster.Snapshot{Nodes: []*cluster.Node{node}, Namespaces: nss}
	for _, k := range slices.Sorted(maps.Keys(pods)) {
		s.Pods = append(s.Pods, pods[k])
	}
	for _, k := range slices.Sorted(maps.Keys(pols)) {
		s.Policies = append(s.Policies, pols[k])
	}
	return s
}
