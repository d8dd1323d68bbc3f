package agent

import (
	"log/slog"
	"net/netip"
	"reflect"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
)

// store holds the cluster as the agent last heard of it, already converted to
// snapshot values: each object is converted once, when it changes. It also
// remembers which objects changed since the writer last took the changes,
// so a sync hands the compiler only those.
type store struct {
	log *slog.Logger

	mu         sync.Mutex
	namespaces map[string]*cluster.Namespace
	pods       map[string]*cluster.Pod
	policies   map[string]*networkingv1.NetworkPolicy
	// nodes are every Node: ClusterNetworkPolicy nodes peers select
	// them by label and match their addresses; this node's own also gives
	// the node's addresses and pod CIDRs.
	nodes    map[string]*cluster.Node
	nodeUIDs map[string]types.UID
	dirty    dirtyKeys
	cnp      cnpState // ClusterNetworkPolicies, see store_cnp.go
	// byIP names the pod holding each address, for the denied-packet log.
	// Two pods can hold one address for a moment; the last set wins.
	byIP map[netip.Addr]string

	changed chan struct{} // signalled (without blocking) on every change
}

// dirtyKeys are the objects changed (set or deleted) since the last
// applyTo.
type dirtyKeys struct {
	pods, namespaces, policies, nodes map[string]struct{}
	clusterPolicies                   map[string]struct{}
}

func newDirtyKeys() dirtyKeys {
	return dirtyKeys{pods: map[string]struct{}{}, namespaces: map[string]struct{}{}, policies: map[string]struct{}{},
		nodes: map[string]struct{}{}, clusterPolicies: map[string]struct{}{}}
}

func newStore(log *slog.Logger) *store {
	return &store{
		log:        log,
		namespaces: map[string]*cluster.Namespace{},
		pods:       map[string]*cluster.Pod{},
		policies:   map[string]*networkingv1.NetworkPolicy{},
		nodes:      map[string]*cluster.Node{},
		nodeUIDs:   map[string]types.UID{},
		byIP:       map[netip.Addr]string{},
		dirty:      newDirtyKeys(),
		cnp:        cnpState{policies: map[string]*cnpEntry{}},
		changed:    make(chan struct{}, 1),
	}
}

// applyTo hands every change since the last call to c and returns the
// number of NetworkPolicies and ClusterNetworkPolicies handed over so far.
// The lock is held only while pointers are copied.
func (s *store) applyTo(c enforce.Changes) (policies, clusterPolicies int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.dirty.namespaces {
		if ns := s.namespaces[key]; ns != nil {
			c.SetNamespace(ns)
		} else {
			c.DeleteNamespace(key)
		}
	}
	for key := range s.dirty.pods {
		if p := s.pods[key]; p != nil {
			c.SetPod(p)
		} else {
			c.DeletePod(key)
		}
	}
	for key := range s.dirty.policies {
		if np := s.policies[key]; np != nil {
			c.SetPolicy(np)
		} else {
			c.DeletePolicy(key)
		}
	}
	for name := range s.dirty.nodes {
		if n := s.nodes[name]; n != nil {
			c.SetNode(n)
		} else {
			c.DeleteNode(name)
		}
	}
	clusterPolicies, held := s.applyClusterPolicies(c)
	s.dirty = newDirtyKeys()
	s.dirty.clusterPolicies = held
	return len(s.policies), clusterPolicies
}

// policy returns the NetworkPolicy namespace/name, or nil.
func (s *store) policy(key string) *networkingv1.NetworkPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policies[key]
}

// podByIP returns namespace/name of the pod holding addr, or "".
func (s *store) podByIP(addr netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byIP[addr]
}

// unindex forgets the addresses of p (nil: nothing) that still name it.
func (s *store) unindex(p *cluster.Pod) {
	if p == nil {
		return
	}
	for _, ip := range p.IPs {
		if s.byIP[ip] == p.Key() {
			delete(s.byIP, ip)
		}
	}
}

// nodeRef returns the UID of the Node name for events, and whether the
// Node is known yet.
func (s *store) nodeRef(name string) (types.UID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeUIDs[name], s.nodes[name] != nil
}

func (s *store) bump() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// The event handlers below run on informer goroutines.

func (s *store) setPod(obj any) {
	var o *podObject
	switch in := obj.(type) {
	case *podObject:
		o = in
	case *corev1.Pod: // not through the informer's transform
		o = newPodObject(in)
	default:
		return
	}
	key := o.Namespace + "/" + o.Name
	if o.err != nil {
		s.log.Warn("ignoring pod with an unusable field", "pod", key, "err", o.err)
		deleteKey(s, s.pods, key)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unindex(s.pods[o.pod.Key()])
	s.pods[o.pod.Key()] = o.pod
	for _, ip := range o.pod.IPs {
		s.byIP[ip] = o.pod.Key()
	}
	s.dirty.pods[o.pod.Key()] = struct{}{}
	s.bump()
}

func (s *store) setNamespace(obj any) {
	in, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.namespaces[in.Name] = cluster.NamespaceFromAPI(in)
	s.dirty.namespaces[in.Name] = struct{}{}
	s.bump()
}

func (s *store) setPolicy(obj any) {
	in, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[in.Namespace+"/"+in.Name] = in
	s.dirty.policies[in.Namespace+"/"+in.Name] = struct{}{}
	s.bump()
}

func (s *store) setNode(obj any) {
	in, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	n, err := cluster.NodeFromAPI(in)
	if err != nil {
		s.log.Warn("node has an unusable field; keeping what was known", "node", in.Name, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodeUIDs[n.Name] = in.UID
	// A Node's status is written every few minutes; what the compiler
	// reads of it (labels, addresses, pod CIDRs) rarely changes, and a Node
	// change with ClusterNetworkPolicies compiles from scratch.
	if old := s.nodes[n.Name]; old != nil && reflect.DeepEqual(old, n) {
		return
	}
	s.nodes[n.Name] = n
	s.dirty.nodes[n.Name] = struct{}{}
	s.bump()
}

func (s *store) deleteNode(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, key)
	delete(s.nodeUIDs, key)
	s.dirty.nodes[key] = struct{}{}
	s.bump()
}

// handlers returns informer event handlers that call set for additions and
// updates and del with the object's key for deletions.
func handlers(set func(any), del func(key string)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { set(obj) },
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				del(key)
			}
		},
	}
}

func deleteKey[T any](s *store, m map[string]T, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := m[key]; ok {
		if p, ok := any(old).(*cluster.Pod); ok {
			s.unindex(p)
		}
		delete(m, key)
		// The map says which kind of object went.
		switch any(m).(type) {
		case map[string]*cluster.Pod:
			s.dirty.pods[key] = struct{}{}
		case map[string]*cluster.Namespace:
			s.dirty.namespaces[key] = struct{}{}
		case map[string]*networkingv1.NetworkPolicy:
			s.dirty.policies[key] = struct{}{}
		}
		s.bump()
	}
}
