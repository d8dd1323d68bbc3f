package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// TestCompilerEqualsCompile drives a Compiler through long random sequences
// of changes (pods added, deleted, relabelled, readdressed, finished, moved
// between nodes, given other ports; namespaces relabelled, created and
// deleted; policies added, replaced, broken and deleted; the node's own
// addresses changed) and checks after every batch that its plan is exactly
// Compile's plan of the same objects.
func TestCompilerEqualsCompile(t *testing.T) {
	steps, incremental := 0, 0
	for seed := range uint64(400) {
		rnd := rand.New(rand.NewPCG(seed, 0x1c4e))
		s := randomSnapshot(rnd)
		opts := Options{DefaultDenyUnknown: rnd.IntN(2) == 0}
		c := NewCompiler("node-1", opts)
		c.Load(s)
		requireSamePlan(t, c, opts, fmt.Sprintf("seed %d, initial", seed))
		m := &mutator{rnd: rnd, g: &randGen{rnd: rnd}, c: c, next: 100}
		for step := range 40 {
			var did []string
			for range 1 + rnd.IntN(4) {
				did = append(did, m.mutate())
			}
			requireSamePlan(t, c, opts, fmt.Sprintf("seed %d, step %d after %s", seed, step, strings.Join(did, "; ")))
			steps++
			if !c.LastUpdate().Full {
				incremental++
			}
		}
	}
	// The comparison means something only if the incremental path ran.
	if incremental < steps*9/10 {
		t.Errorf("only %d of %d plans were incremental", incremental, steps)
	}
}

func requireSamePlan(t *testing.T, c *Compiler, opts Options, when string) {
	t.Helper()
	got := c.Plan()
	snap := c.Snapshot()
	want := Compile(snap, "node-1", opts)
	if err := checkParts(got); err != nil {
		t.Fatalf("%s: the Compiler's plan (full=%v): %v", when, c.LastUpdate().Full, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the Compiler's plan (full=%v) differs from Compile's:\n%s\ncluster:\n%s",
			when, c.LastUpdate().Full, planDiff(got, want), dumpBrief(sorted(snap)))
	}
}

// sorted orders a snapshot for a readable dump.
func sorted(s *cluster.Snapshot) *cluster.Snapshot {
	slices.SortFunc(s.Pods, func(a, b *cluster.Pod) int { return strings.Compare(a.Key(), b.Key()) })
	slices.SortFunc(s.Namespaces, func(a, b *cluster.Namespace) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Nodes, func(a, b *cluster.Node) int { return strings.Compare(a.Name, b.Name) })
	sortPolicies(s.Policies)
	return s
}

func planDiff(got, want *plan.Plan) string {
	g, w := planLines(got), planLines(want)
	var out []string
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "  compiler only: "+l)
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "  Compile only:  "+l)
		}
	}
	if len(out) == 0 {
		return "  (same text; the difference is in representation)"
	}
	return strings.Join(out, "\n")
}

func planLines(pl *plan.Plan) []string {
	var out []string
	for _, p := range pl.Pods {
		out = append(out, fmt.Sprintf("pod %s %v in=%s eg=%s", p.Key(), p.IPs, p.Ingress, p.Egress))
	}
	for _, p := range pl.Profiles {
		out = append(out, fmt.Sprintf("profile %s %v any=%v parts=%v", p.ID, p.Policies, p.Any, p.AnyParts))
		for _, pc := range p.Ports {
			out = append(out, fmt.Sprintf("profile %s %v/%d-%d %v parts=%v", p.ID, pc.Protocol, pc.First, pc.Last, pc.Peers, pc.Parts))
		}
	}
	for _, p := range pl.Problems {
		out = append(out, "problem "+p.String())
	}
	out = append(out, fmt.Sprintf("node %v cidrs %v", pl.NodeAddrs, pl.PodCIDRs))
	return out
}

// mutator makes one random change to a Compiler's objects.
type mutator struct {
	rnd  *rand.Rand
	g    *randGen
	c    *Compiler
	next int
}

func (m *mutator) pick(n int) int { return m.rnd.IntN(n) }

func (m *mutator) mutate() string {
	snap := sorted(m.c.Snapshot())
	switch r := m.pick(20); {
	case r < 3 || len(snap.Pods) == 0:
		p := m.g.pod(snap, m.next)
		m.next++
		if len(snap.Pods) > 0 && m.pick(6) == 0 { // share an address with a live pod
			p.IPs = slices.Clone(snap.Pods[m.pick(len(snap.Pods))].IPs)
		}
		m.c.SetPod(p)
		return "add pod " + p.Key()
	case r < 5:
		p := snap.Pods[m.pick(len(snap.Pods))]
		m.c.DeletePod(podNamespace(p) + "/" + p.Name)
		return "delete pod " + p.Key()
	case r < 11:
		return m.changePod(snap.Pods[m.pick(len(snap.Pods))])
	case r < 13:
		return m.changeNamespace(snap)
	case r < 17:
		return m.changePolicy(snap)
	case r < 18:
		n := *snap.Nodes[m.pick(len(snap.Nodes))]
		n.Addresses = append(slices.Clone(n.Addresses), netip.AddrFrom4([4]byte{192, 168, 1, byte(m.pick(250))}))
		if m.pick(3) == 0 {
			n.PodCIDRs = nil
		}
		m.c.SetNode(&n)
		return "change node " + n.Name
	default: // a burst on one namespace's pods, as a rollout makes
		ns := fmt.Sprintf("n%d", m.pick(4))
		count := 0
		for _, p := range snap.Pods {
			if podNamespace(p) == ns && m.pick(2) == 0 {
				m.changePod(p)
				count++
			}
		}
		return fmt.Sprintf("change %d pods of %s", count, ns)
	}
}

func (m *mutator) changePod(old *cluster.Pod) string {
	p := *old
	var what string
	switch m.pick(7) {
	case 0:
		p.Labels = m.g.labels(map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}})
		what = "relabel"
	case 1:
		fresh := m.g.pod(sorted(m.c.Snapshot()), m.next)
		m.next++
		p.IPs = fresh.IPs
		what = "readdress"
	case 2:
		p.Phase = []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed, corev1.PodRunning, corev1.PodPending}[m.pick(4)]
		what = "phase " + string(p.Phase)
	case 3:
		p.Ports = m.g.pod(sorted(m.c.Snapshot()), 0).Ports
		what = "ports"
	case 4:
		p.NodeName = fmt.Sprintf("node-%d", 1+m.pick(3))
		what = "node " + p.NodeName
	case 5:
		p.HostNetwork = !p.HostNetwork
		what = "hostNetwork"
	default:
		p.Labels = labels.Merge(p.Labels, labels.Set{"app": "a"})
		what = "app=a"
	}
	m.c.SetPod(&p)
	return what + " " + p.Key()
}

func (m *mutator) changeNamespace(snap *cluster.Snapshot) string {
	name := fmt.Sprintf("n%d", m.pick(5))
	switch m.pick(4) {
	case 0:
		m.c.DeleteNamespace(name)
		return "delete namespace " + name
	default:
		l := m.g.labels(map[string][]string{"team": {"a", "b"}, "env": {"p", "q"}})
		if m.pick(3) == 0 {
			l[corev1.LabelMetadataName] = name
		}
		m.c.SetNamespace(&cluster.Namespace{Name: name, Labels: l})
		return fmt.Sprintf("label namespace %s %v", name, l)
	}
}

func (m *mutator) changePolicy(snap *cluster.Snapshot) string {
	switch r := m.pick(6); {
	case r < 2 || len(snap.Policies) == 0:
		np := m.g.policy(snap, m.next)
		m.next++
		if m.pick(4) == 0 {
			breakPolicy(m.rnd, np)
		}
		m.c.SetPolicy(np)
		return "add policy " + np.Namespace + "/" + np.Name
	case r < 3:
		np := snap.Policies[m.pick(len(snap.Policies))]
		m.c.DeletePolicy(policyNamespace(np) + "/" + np.Name)
		return "delete policy " + np.Name
	default:
		old := snap.Policies[m.pick(len(snap.Policies))]
		np := m.g.policy(snap, 0)
		np.Namespace, np.Name = old.Namespace, old.Name
		if m.pick(4) == 0 {
			breakPolicy(m.rnd, np)
		}
		m.c.SetPolicy(np)
		return "replace policy " + np.Name
	}
}

// TestCompilerKeepsUntouchedProfiles checks that a change unrelated to a
// profile leaves it the same value, so the dataplane can skip it.
func TestCompilerKeepsUntouchedProfiles(t *testing.T) {
	s := synth.Generate(synth.Config{Pods: 2000, Policies: 200, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 7})
	c := NewCompiler(synth.NodeName(0), Options{})
	c.Load(s)
	before := c.Plan()
	// A pod that no selector picks: labels nobody uses, in a namespace no
	// namespaceSelector of the synthetic policies can match by name.
	c.SetNamespace(&cluster.Namespace{Name: "quiet", Labels: labels.Set{corev1.LabelMetadataName: "quiet"}})
	c.SetPod(&cluster.Pod{Namespace: "quiet", Name: "lonely", NodeName: synth.NodeName(3), Phase: corev1.PodRunning,
		Labels: labels.Set{"unused": "yes"}, IPs: []netip.Addr{netip.MustParseAddr("10.250.0.1")}})
	after := c.Plan()
	if c.LastUpdate().Full {
		t.Fatal("one pod and one namespace were compiled from scratch")
	}
	changed := 0
	for i := range after.Profiles {
		if after.Profiles[i] != before.Profiles[i] {
			changed++
		}
	}
	// Peers selecting every pod of every namespace (namespaceSelector {})
	// take the new pod in; every other profile must be the same value.
	if want := Compile(c.Snapshot(), synth.NodeName(0), Options{}); !reflect.DeepEqual(after, want) {
		t.Fatalf("plan differs from Compile's:\n%s", planDiff(after, want))
	}
	if changed == len(after.Profiles) {
		t.Errorf("all %d profiles were rebuilt for a pod no profile can depend on but through cluster-wide peers", changed)
	}
	t.Logf("%d of %d profiles rebuilt", changed, len(after.Profiles))
}

// dumpBrief prints a cluster one object a line.
func dumpBrief(s *cluster.Snapshot) string {
	var b strings.Builder
	for _, ns := range s.Namespaces {
		fmt.Fprintf(&b, "namespace %s %v\n", ns.Name, ns.Labels)
	}
	for _, p := range s.Pods {
		fmt.Fprintf(&b, "pod %s node=%s phase=%s host=%v ips=%v labels=%v ports=%v\n", p.Key(), p.NodeName, p.Phase, p.HostNetwork, p.IPs, p.Labels, p.Ports)
	}
	for _, np := range s.Policies {
		j, _ := json.Marshal(np.Spec)
		fmt.Fprintf(&b, "policy %s/%s %s\n", np.Namespace, np.Name, j)
	}
	return b.String()
}

// TestCompilerEqualsCompileAtScale does the same on a synthetic cluster big
// enough for the compiler's label index and shared peers to matter, with
// the changes a real cluster sees most: pods coming, going and relabelled,
// namespaces relabelled, policies added, replaced and deleted.
func TestCompilerEqualsCompileAtScale(t *testing.T) {
	cfg := synth.Config{Pods: 2000, Policies: 200, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 11}
	s := synth.Generate(cfg)
	cfg.Seed = 12
	pool := synth.Generate(cfg)
	rnd := rand.New(rand.NewPCG(5, 5))
	c := NewCompiler(synth.NodeName(0), Options{DefaultDenyUnknown: true})
	c.Load(s)
	requireSamePlanOf(t, c, synth.NodeName(0), Options{DefaultDenyUnknown: true}, "initial")
	for step := range 60 {
		snap := sorted(c.Snapshot())
		var what string
		switch r := rnd.IntN(10); {
		case r < 2:
			p := *pool.Pods[rnd.IntN(len(pool.Pods))]
			p.Name = fmt.Sprintf("added-%d", step)
			if rnd.IntN(3) == 0 {
				p.NodeName = synth.NodeName(0)
			}
			c.SetPod(&p)
			what = "add pod " + p.Key()
		case r < 3:
			p := snap.Pods[rnd.IntN(len(snap.Pods))]
			c.DeletePod(p.Key())
			what = "delete pod " + p.Key()
		case r < 6:
			p := *snap.Pods[rnd.IntN(len(snap.Pods))]
			p.Labels = pool.Pods[rnd.IntN(len(pool.Pods))].Labels
			c.SetPod(&p)
			what = fmt.Sprintf("relabel pod %s %v", p.Key(), p.Labels)
		case r < 7:
			ns := *snap.Namespaces[rnd.IntN(len(snap.Namespaces))]
			ns.Labels = labels.Merge(ns.Labels, labels.Set{"team": fmt.Sprintf("team-%d", rnd.IntN(7)), "env": []string{"prod", "dev", "staging"}[rnd.IntN(3)]})
			c.SetNamespace(&ns)
			what = fmt.Sprintf("relabel namespace %s %v", ns.Name, ns.Labels)
		case r < 8:
			np := pool.Policies[rnd.IntN(len(pool.Policies))].DeepCopy()
			np.Name = fmt.Sprintf("added-%d", step)
			c.SetPolicy(np)
			what = "add policy " + np.Namespace + "/" + np.Name
		case r < 9:
			old := snap.Policies[rnd.IntN(len(snap.Policies))]
			np := pool.Policies[rnd.IntN(len(pool.Policies))].DeepCopy()
			np.Namespace, np.Name = old.Namespace, old.Name
			c.SetPolicy(np)
			what = "replace policy " + np.Namespace + "/" + np.Name
		default:
			np := snap.Policies[rnd.IntN(len(snap.Policies))]
			c.DeletePolicy(np.Namespace + "/" + np.Name)
			what = "delete policy " + np.Namespace + "/" + np.Name
		}
		requireSamePlanOf(t, c, synth.NodeName(0), Options{DefaultDenyUnknown: true}, fmt.Sprintf("step %d: %s", step, what))
		if c.LastUpdate().Full {
			t.Fatalf("step %d (%s) compiled from scratch", step, what)
		}
	}
}

func requireSamePlanOf(t *testing.T, c *Compiler, node string, opts Options, when string) {
	t.Helper()
	got := c.Plan()
	want := Compile(c.Snapshot(), node, opts)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the Compiler's plan (full=%v) differs from Compile's:\n%s", when, c.LastUpdate().Full, planDiff(got, want))
	}
}
