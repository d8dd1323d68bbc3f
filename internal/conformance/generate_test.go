package conformance

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/policy"
)

func model(t *testing.T, nodes int) *cluster.Snapshot {
	t.Helper()
	s, err := Model(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGenerateIsDeterministicDistinctAndValid(t *testing.T) {
	for _, nodes := range []int{1, 2} {
		base := model(t, nodes)
		a, b := Generate(1, base, 400), Generate(1, base, 400)
		if len(a) != 400 {
			t.Fatalf("%d nodes: %d cases, want 400", nodes, len(a))
		}
		seen := map[string]bool{}
		for i := range a {
			ka, kb := canonical(a[i]), canonical(b[i])
			if ka != kb || !slices.Equal(a[i].Tags, b[i].Tags) {
				t.Fatalf("%d nodes: case %d differs between two runs with the same seed", nodes, i)
			}
			if seen[ka] {
				t.Errorf("%d nodes: case %d repeats an earlier one", nodes, i)
			}
			seen[ka] = true
			for _, np := range a[i].Policies {
				if errs := policy.Validate(np); len(errs) > 0 {
					t.Errorf("%d nodes: case %d: policy %s/%s is invalid: %v", nodes, i, np.Namespace, np.Name, errs.ToAggregate())
				}
			}
		}
		if c := Generate(2, base, 400); canonical(c[0]) == canonical(a[0]) && canonical(c[1]) == canonical(a[1]) {
			t.Errorf("%d nodes: seeds 1 and 2 give the same cases", nodes)
		}
		if m := Missing(a); len(m) > 0 {
			t.Errorf("%d nodes: no case covers %v", nodes, m)
		}
		sample := Sample(a, 40)
		var picked []Generated
		for _, i := range sample {
			picked = append(picked, a[i])
		}
		if len(picked) != 40 {
			t.Errorf("%d nodes: sample of %d cases, want 40", nodes, len(picked))
		}
		if m := Missing(picked); len(m) > 0 {
			t.Errorf("%d nodes: the sample misses %v", nodes, m)
		}
	}
}

// TestActionsApply checks that every generated action applies to the
// model and changes it.
func TestActionsApply(t *testing.T) {
	base := model(t, 2)
	for _, c := range Generate(1, base, 400) {
		s := &State{Snap: lab.Clone(base)}
		for _, st := range c.Steps() {
			if err := st.Change(s); err != nil {
				t.Fatalf("%s: %s: %v", c.Name(), st.Action, err)
			}
		}
		if err := scenario.Normalize(s.Snap); err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
	}
}

// TestScenarioYAMLReplays writes a changed model with generated policies as
// a scenario and reads it back with the lab's own parser: the same pods,
// addresses, labels, nodes and policies.
func TestScenarioYAMLReplays(t *testing.T) {
	for _, nodes := range []int{1, 2} {
		base := model(t, nodes)
		cases := Generate(3, base, 20)
		s := &State{Snap: lab.Clone(base)}
		for _, c := range cases[:5] {
			for _, np := range c.Policies {
				s.Apply(np)
			}
		}
		if err := s.LabelNamespace("y", "team", "blue"); err != nil {
			t.Fatal(err)
		}
		s.AddPod("z", "d")
		if err := scenario.Normalize(s.Snap); err != nil {
			t.Fatal(err)
		}
		y, err := ScenarioYAML(s.Snap, "replay of a test\nsecond line")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(y), "# replay of a test\n# second line\n---\n") {
			t.Errorf("header not written as comments:\n%.200s", y)
		}
		parsed, err := scenario.Parse(y)
		if err != nil {
			t.Fatalf("%d nodes: the lab refuses the scenario: %v\n%s", nodes, err, y)
		}
		got, err := parsed.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		want := s.Snap
		if len(got.Pods) != len(want.Pods) || len(got.Policies) != len(want.Policies) || len(got.Nodes) != len(want.Nodes) {
			t.Fatalf("%d nodes: got %d pods, %d policies, %d nodes; want %d, %d, %d", nodes,
				len(got.Pods), len(got.Policies), len(got.Nodes), len(want.Pods), len(want.Policies), len(want.Nodes))
		}
		for i, p := range want.Pods {
			g := got.Pods[i]
			if g.Key() != p.Key() || !slices.Equal(g.IPs, p.IPs) || g.NodeName != p.NodeName ||
				!g.Labels.AsSelector().Matches(p.Labels) || len(g.Labels) != len(p.Labels) || !slices.Equal(g.Ports, p.Ports) {
				t.Errorf("%d nodes: pod %d: got %+v, want %+v", nodes, i, g, p)
			}
		}
		for i, ns := range want.Namespaces {
			if got.Namespaces[i].Name != ns.Name || len(got.Namespaces[i].Labels) != len(ns.Labels) ||
				!got.Namespaces[i].Labels.AsSelector().Matches(ns.Labels) {
				t.Errorf("%d nodes: namespace %d: got %+v, want %+v", nodes, i, got.Namespaces[i], ns)
			}
		}
		for i, np := range want.Policies {
			gj := policyJSON(got.Policies[i])
			if wj := policyJSON(np); gj != wj {
				t.Errorf("%d nodes: policy %d: got %s, want %s", nodes, i, gj, wj)
			}
		}
	}
}

func policyJSON(np *networkingv1.NetworkPolicy) string {
	cp := np.DeepCopy()
	cp.TypeMeta = metav1.TypeMeta{}
	j, _ := json.Marshal(cp)
	return string(j)
}
