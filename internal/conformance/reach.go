package conformance

import (
	"slices"
	"strings"
)

// Peer picks pods by namespace and name; an empty field matches any.
type Peer struct {
	Namespace, Pod string
}

func (p Peer) matches(key string) bool {
	ns, name, _ := strings.Cut(key, "/")
	return (p.Namespace == "" || p.Namespace == ns) && (p.Pod == "" || p.Pod == name)
}

// Reach is an expected truth table between pods ("namespace/name"), built as
// the upstream suite builds its own: start from a default for every pair,
// then override groups of pairs in order. Traffic from a pod to itself is
// left out, as upstream ignores loopback.
type Reach struct {
	pods  []string
	cells map[[2]string]bool
}

// NewReach returns a table over pods where every pair is def.
func NewReach(pods []string, def bool) *Reach {
	r := &Reach{pods: slices.Sorted(slices.Values(pods)), cells: map[[2]string]bool{}}
	r.ExpectPeer(Peer{}, Peer{}, def)
	return r
}

// ExpectPeer sets every pair from a pod matching from to a pod matching to.
func (r *Reach) ExpectPeer(from, to Peer, connected bool) {
	for _, f := range r.pods {
		for _, t := range r.pods {
			if f != t && from.matches(f) && to.matches(t) {
				r.cells[[2]string{f, t}] = connected
			}
		}
	}
}

// Expect sets one pair.
func (r *Reach) Expect(from, to string, connected bool) {
	r.ExpectPeer(peerOf(from), peerOf(to), connected)
}

// ExpectAllIngress sets every pair into pod.
func (r *Reach) ExpectAllIngress(pod string, connected bool) {
	r.ExpectPeer(Peer{}, peerOf(pod), connected)
}

// ExpectAllEgress sets every pair out of pod.
func (r *Reach) ExpectAllEgress(pod string, connected bool) {
	r.ExpectPeer(peerOf(pod), Peer{}, connected)
}

// Get returns the expectation for from -> to, and whether the table has one.
func (r *Reach) Get(from, to string) (connected, ok bool) {
	connected, ok = r.cells[[2]string{from, to}]
	return connected, ok
}

// Pods returns the pods of the table, sorted.
func (r *Reach) Pods() []string { return slices.Clone(r.pods) }

func peerOf(key string) Peer {
	ns, name, _ := strings.Cut(key, "/")
	return Peer{Namespace: ns, Pod: name}
}
