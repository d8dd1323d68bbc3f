package agent

import (
	"k8s.io/apimachinery/pkg/types"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// cnpState is the store's part for ClusterNetworkPolicies. Their informer
// comes and goes with the CRD (see cnpWatch), so the store accepts events
// only from the informer it was last told about (epoch), and holds back
// what that informer delivers until its initial list is complete: handing a
// half-listed admin tier to the compiler could deny or allow by mistake for
// a moment.
type cnpState struct {
	policies map[string]*cnpEntry // by name
	epoch    int                  // the informer whose events count; 0: none
	holding  bool                 // its initial list is not complete yet
}

// cnpEntry is one ClusterNetworkPolicy as the store keeps it.
type cnpEntry struct {
	policy *cluster.ClusterNetworkPolicy
	uid    types.UID // for events
	// invalid are what ValidateClusterNetworkPolicy refuses: reported like
	// the compiler's problems, while the object still goes to the compiler,
	// which fails closed for each part it cannot read.
	invalid []plan.Problem
}

// applyClusterPolicies hands the changed ClusterNetworkPolicies to c, unless
// an initial list is still coming in; it returns how many the compiler now
// holds and the keys still held back. The caller holds s.mu.
func (s *store) applyClusterPolicies(c enforce.Changes) (handed int, held map[string]struct{}) {
	if s.cnp.holding {
		return 0, s.dirty.clusterPolicies
	}
	for name := range s.dirty.clusterPolicies {
		if e := s.cnp.policies[name]; e != nil {
			c.SetClusterNetworkPolicy(e.policy)
		} else {
			c.DeleteClusterNetworkPolicy(name)
		}
	}
	return len(s.cnp.policies), map[string]struct{}{}
}

// beginClusterPolicies makes epoch the informer whose events count. With
// hold, its objects wait in the store until listedClusterPolicies.
func (s *store) beginClusterPolicies(epoch int, hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cnp.epoch, s.cnp.holding = epoch, hold
}

// clusterPoliciesFrom reports whether the informer epoch is the one whose
// events count.
func (s *store) clusterPoliciesFrom(epoch int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cnp.epoch == epoch
}

// listedClusterPolicies releases what the informer epoch listed, and
// reports whether it was holding it back: false for a stopped informer.
func (s *store) listedClusterPolicies(epoch int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cnp.epoch != epoch || !s.cnp.holding {
		return false
	}
	s.cnp.holding = false
	s.bump()
	return true
}

// endClusterPolicies forgets every ClusterNetworkPolicy and ignores the
// stopped informer's late events: the API server no longer serves them.
func (s *store) endClusterPolicies() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cnp.epoch, s.cnp.holding = 0, false
	for name := range s.cnp.policies {
		delete(s.cnp.policies, name)
		s.dirty.clusterPolicies[name] = struct{}{}
	}
	s.bump()
}

// setClusterPolicy is the informer epoch's handler for additions and
// updates.
func (s *store) setClusterPolicy(epoch int, obj any) {
	in, ok := obj.(*v1beta1.ClusterNetworkPolicy)
	if !ok {
		return
	}
	e := &cnpEntry{policy: cluster.ClusterNetworkPolicyFromAPI(in), uid: in.UID}
	for _, err := range policy.ValidateClusterNetworkPolicy(in) {
		e.invalid = append(e.invalid, plan.Problem{Kind: plan.KindClusterNetworkPolicy, Policy: in.Name,
			Field: err.Field, Message: err.ErrorBody()})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.cnp.epoch {
		return
	}
	s.cnp.policies[in.Name] = e
	s.dirty.clusterPolicies[in.Name] = struct{}{}
	s.bump()
}

// deleteClusterPolicy is the informer epoch's handler for deletions.
func (s *store) deleteClusterPolicy(epoch int, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch != s.cnp.epoch {
		return
	}
	if _, ok := s.cnp.policies[name]; ok {
		delete(s.cnp.policies, name)
		s.dirty.clusterPolicies[name] = struct{}{}
		s.bump()
	}
}

// clusterPolicy returns the UID of the ClusterNetworkPolicy name, and
// whether the store holds it.
func (s *store) clusterPolicy(name string) (types.UID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.cnp.policies[name]
	if e == nil {
		return "", false
	}
	return e.uid, true
}

// clusterPolicyProblems returns what validation refused in the
// ClusterNetworkPolicies the compiler holds.
func (s *store) clusterPolicyProblems() []plan.Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cnp.holding {
		return nil
	}
	var out []plan.Problem
	for _, e := range s.cnp.policies {
		out = append(out, e.invalid...)
	}
	return out
}
