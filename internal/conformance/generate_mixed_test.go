package conformance

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/explain"
	"github.com/kube-fence/kube-fence/internal/lab"

	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// TestGenerateMixed: the mixed cases are deterministic and distinct, cover
// every value of MixedDimensions, hold only ClusterNetworkPolicies that
// compile without a problem (none fails closed), give the policies of a
// tier distinct priorities, and often enough decide connections in each
// tier.
func TestGenerateMixed(t *testing.T) {
	base := model(t, 1)
	a, b := GenerateMixed(1, base, 240), GenerateMixed(1, base, 240)
	if len(a) != 240 {
		t.Fatalf("%d cases, want 240", len(a))
	}
	seen := map[string]bool{}
	byTier := map[policy.DecidedBy]int{}
	for i, c := range a {
		if canonical(c) != canonical(b[i]) {
			t.Fatalf("case %d differs between two runs with the same seed", i)
		}
		if seen[canonical(c)] {
			t.Errorf("case %d repeats an earlier one", i)
		}
		seen[canonical(c)] = true
		s := &State{Snap: lab.Clone(base)}
		for _, st := range c.Steps()[:1] {
			if err := st.Change(s); err != nil {
				t.Fatal(err)
			}
		}
		prios := map[string]bool{}
		for _, p := range c.CNPs {
			k := string(p.Tier) + string(rune(p.Priority))
			if prios[k] {
				t.Errorf("%s: two %s policies of priority %d", c.Name(), p.Tier, p.Priority)
			}
			prios[k] = true
		}
		pl := policy.Compile(s.Snap, "", policy.Options{})
		for _, pr := range pl.Problems {
			t.Errorf("%s: %s", c.Name(), pr)
		}
		keys := s.PodKeys()
		from, to := s.IPs(keys[i%len(keys)]), s.IPs(keys[(i+1)%len(keys)])
		v := policy.Decide(s.Snap, endpointOf(s, keys[i%len(keys)], from[0]), endpointOf(s, keys[(i+1)%len(keys)], to[0]), plan.TCP, 80)
		byTier[v.Egress.By]++
		byTier[v.Ingress.By]++
	}
	if m := MissingIn(a, MixedDimensions); len(m) > 0 {
		t.Errorf("no case covers %v", m)
	}
	for _, by := range []policy.DecidedBy{policy.ByAdmin, policy.ByBaseline, policy.ByNetworkPolicy, policy.ByDefault} {
		if byTier[by] < 10 {
			t.Errorf("the sampled connections were decided by %v: too few by %s", byTier, by)
		}
	}
}

func endpointOf(s *State, key string, ip netip.Addr) policy.Endpoint {
	for _, p := range s.Snap.Pods {
		if p.Namespace+"/"+p.Name == key {
			return policy.Endpoint{Pod: p, IP: ip}
		}
	}
	return policy.Endpoint{IP: ip}
}

// TestCNPToAPIRoundTrips: the replayable scenario of a failed mixed case
// holds the very ClusterNetworkPolicies the case made.
func TestCNPToAPIRoundTrips(t *testing.T) {
	for _, c := range GenerateMixed(3, model(t, 1), 60) {
		for _, p := range c.CNPs {
			if back := cluster.ClusterNetworkPolicyFromAPI(cnpToAPI(p)); !reflect.DeepEqual(back, p) {
				t.Fatalf("%s: %+v came back as %+v", c.Name(), p, back)
			}
		}
	}
}

// TestGenerateMixedAuditCases: the mixed audit cases, with their policy in
// audit mode, have connections the reference evaluator says it would deny
// (so the lab's audit_denied is judged on some), and none once the action
// enforced it.
func TestGenerateMixedAuditCases(t *testing.T) {
	base := model(t, 1)
	cases, before, after := 0, 0, 0
	for _, c := range GenerateMixed(1, base, 60) {
		if c.ID%auditEvery != 0 {
			continue
		}
		cases++
		s := &State{Snap: lab.Clone(base)}
		for i, st := range c.Steps() {
			if err := st.Change(s); err != nil {
				t.Fatal(err)
			}
			n := wouldDenyCount(t, s)
			if i == 0 {
				before += n
			} else {
				after += n
			}
		}
	}
	if cases == 0 || before == 0 || after != 0 {
		t.Errorf("%d audit cases: %d would-deny connections in audit mode, %d once enforced; want some, then none", cases, before, after)
	}
	t.Logf("%d audit cases: %d would-deny connections (TCP/80, either family) in audit mode", cases, before)
}

func wouldDenyCount(t *testing.T, s *State) int {
	t.Helper()
	n := 0
	for _, from := range s.PodKeys() {
		for _, to := range s.PodKeys() {
			if from == to {
				continue
			}
			r, err := explain.Explain(s.Snap, explain.Query{From: from, To: to, Protocol: plan.TCP, Port: 80})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range r.Verdicts {
				if len(v.WouldBeDeniedBy) > 0 {
					n++
				}
			}
		}
	}
	return n
}
