package agent

import (
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// store holds the cluster as the agent last heard of it, already converted to
// snapshot values: each object is converted once, when it changes, so a sync
// only collects pointers.
type store struct {
	log *slog.Logger

	mu         sync.Mutex
	namespaces map[string]*cluster.Namespace
	pods       map[string]*cluster.Pod
	policies   map[string]*networkingv1.NetworkPolicy
	node       *cluster.Node
	nodeUID    types.UID
	version    uint64

	changed chan struct{} // signalled (without blocking) on every change
}

func newStore(log *slog.Logger) *store {
	return &store{
		log:        log,
		namespaces: map[string]*cluster.Namespace{},
		pods:       map[string]*cluster.Pod{},
		policies:   map[string]*networkingv1.NetworkPolicy{},
		changed:    make(chan struct{}, 1),
	}
}

// Snapshot returns the current state and its version.
func (s *store) Snapshot() (*cluster.Snapshot, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := &cluster.Snapshot{
		Namespaces: make([]*cluster.Namespace, 0, len(s.namespaces)),
		Pods:       make([]*cluster.Pod, 0, len(s.pods)),
		Policies:   make([]*networkingv1.NetworkPolicy, 0, len(s.policies)),
	}
	for _, ns := range s.namespaces {
		snap.Namespaces = append(snap.Namespaces, ns)
	}
	for _, p := range s.pods {
		snap.Pods = append(snap.Pods, p)
	}
	for _, np := range s.policies {
		snap.Policies = append(snap.Policies, np)
	}
	if s.node != nil {
		snap.Nodes = []*cluster.Node{s.node}
	}
	return snap, s.version
}

// Node returns this node's name and UID for events, once it is known.
func (s *store) nodeRef() (types.UID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeUID, s.node != nil
}

func (s *store) bump() {
	s.version++
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// The event handlers below run on informer goroutines.

func (s *store) setPod(obj any) {
	in, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	p, err := cluster.PodFromAPI(in)
	if err != nil {
		s.log.Warn("ignoring pod with an unusable field", "pod", in.Namespace+"/"+in.Name, "err", err)
		deleteKey(s, s.pods, in.Namespace+"/"+in.Name)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pods[p.Key()] = p
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
	s.node, s.nodeUID = n, in.UID
	s.bump()
}

func (s *store) deleteNode(string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node, s.nodeUID = nil, ""
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
	if _, ok := m[key]; ok {
		delete(m, key)
		s.bump()
	}
}
