package conformance

import (
	"fmt"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// State is the desired cluster a step builds: a copy of the lab's snapshot
// that the step changes the way a user would with kubectl (create, update or
// delete a policy, label a namespace or a pod, create a pod). The runner then
// hands it to Lab.Update.
type State struct {
	Snap *cluster.Snapshot
}

// Apply creates the policy, or replaces the one of the same namespace and
// name (kubectl apply).
func (s *State) Apply(np *networkingv1.NetworkPolicy) {
	for i, old := range s.Snap.Policies {
		if old.Namespace == np.Namespace && old.Name == np.Name {
			s.Snap.Policies[i] = np.DeepCopy()
			return
		}
	}
	s.Snap.Policies = append(s.Snap.Policies, np.DeepCopy())
}

// Delete deletes the policy namespace/name; it is an error when there is none.
func (s *State) Delete(namespace, name string) error {
	i := slices.IndexFunc(s.Snap.Policies, func(np *networkingv1.NetworkPolicy) bool {
		return np.Namespace == namespace && np.Name == name
	})
	if i < 0 {
		return fmt.Errorf("delete networkpolicy %s/%s: not found", namespace, name)
	}
	s.Snap.Policies = slices.Delete(s.Snap.Policies, i, i+1)
	return nil
}

// DeleteAllPolicies deletes every policy.
func (s *State) DeleteAllPolicies() { s.Snap.Policies = nil }

// LabelNamespace sets (or, with an empty value, removes) a namespace label.
func (s *State) LabelNamespace(name, key, value string) error {
	for _, ns := range s.Snap.Namespaces {
		if ns.Name == name {
			ns.Labels = setLabel(ns.Labels, key, value)
			return nil
		}
	}
	return fmt.Errorf("label namespace %s: not found", name)
}

// LabelPod sets (or, with an empty value, removes) a label of pod
// "namespace/name".
func (s *State) LabelPod(key, label, value string) error {
	p := s.Pod(key)
	if p == nil {
		return fmt.Errorf("label pod %s: not found", key)
	}
	p.Labels = setLabel(p.Labels, label, value)
	return nil
}

// AddPod creates a model pod (labelled pod=<name>, serving the model's ports)
// on the next node in turn; the lab gives it its addresses.
func (s *State) AddPod(namespace, name string) *cluster.Pod {
	p := ModelPod(namespace, name)
	if n := len(s.Snap.Nodes); n > 1 {
		p.NodeName = s.Snap.Nodes[len(s.Snap.Pods)%n].Name
	}
	s.Snap.Pods = append(s.Snap.Pods, p)
	return p
}

// Pod returns pod "namespace/name", or nil.
func (s *State) Pod(key string) *cluster.Pod {
	for _, p := range s.Snap.Pods {
		if p.Key() == key {
			return p
		}
	}
	return nil
}

// IPs returns the addresses of pod "namespace/name" (one per family).
func (s *State) IPs(key string) []netip.Addr {
	if p := s.Pod(key); p != nil {
		return slices.Clone(p.IPs)
	}
	return nil
}

// PodKeys returns the keys of the running pods that have addresses, sorted:
// the rows and columns of the step's truth tables.
func (s *State) PodKeys() []string {
	var out []string
	for _, p := range s.Snap.Pods {
		if p.Enforceable() {
			out = append(out, p.Key())
		}
	}
	slices.Sort(out)
	return out
}

func setLabel(l labels.Set, key, value string) labels.Set {
	out := labels.Set{}
	for k, v := range l {
		out[k] = v
	}
	if value == "" {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}
