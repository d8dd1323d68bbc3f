package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// ChangeResult is one kind of incremental change at one cluster size: the
// path the agent takes (policy.Compiler, nft.Renderer, Conn.Sync, then
// VerifyApplied). Times are milliseconds; transaction sizes are medians.
type ChangeResult struct {
	Size string `json:"size"`
	Kind string `json:"kind"`
	// What was changed, to reproduce it.
	Change string `json:"change"`

	Compile Sample `json:"compileMs"`
	Render  Sample `json:"renderMs"`
	// Sync is diff, encoding, sending and the kernel's commit.
	Sync Sample `json:"syncMs"`
	// ToCommit is the change handed to the compiler to the kernel's
	// acknowledgement of the committed transaction: Compile+Render+Sync.
	ToCommit    Sample `json:"toCommitMs"`
	ToCommitCPU Sample `json:"toCommitCpuMs"`
	// Verify is reading back what the transaction changed.
	Verify Sample `json:"verifyMs"`

	Messages float64 `json:"messages"`
	Bytes    float64 `json:"bytes"`
	Added    float64 `json:"elementsAdded"`
	Deleted  float64 `json:"elementsDeleted"`
	Objects  float64 `json:"objectsAddedOrReplaced"` // sets and chains created, chains whose rules were replaced
	// Full counts the runs the compiler compiled from scratch (it should
	// not for a single change).
	Full int `json:"fullCompiles"`
}

// A change is made and then undone, so every repetition starts from the
// same table; only the forward step is measured.
type change struct {
	kind, desc string
	do, undo   func(c enforce.Changes)
}

// rig is a node's pipeline as the agent runs it, on a table in a scratch
// namespace.
type rig struct {
	s    *cluster.Snapshot
	pipe *enforce.Pipeline
}

func measureChanges(ctx context.Context, sz Size, runs int, log func(string, ...any)) ([]ChangeResult, error) {
	ns, err := netns.New()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	pipe, err := enforce.Open(synth.NodeName(0), options, kernel.Options{NetNSFD: ns.FD()})
	if err != nil {
		return nil, err
	}
	defer pipe.Close()
	g := &rig{s: synth.Generate(sz.Config), pipe: pipe}
	pipe.Load(g.s)
	if _, err := pipe.Apply(); err != nil { // the whole table; each change is read back below
		return nil, err
	}
	pool := sz.Config
	pool.Seed++
	finders := []func(*rig, *cluster.Snapshot) (change, error){findPodAdded(false), findPodAdded(true), findRelabel, findPolicy, findNamespace}
	var chs []change
	for _, find := range finders {
		ch, err := find(g, synth.Generate(pool))
		if err != nil {
			return nil, err
		}
		chs = append(chs, ch)
	}
	cnpAdded, cnpChanged, cnpDeleted, cnpBase, peer, err := findCNPChangesAndPeer(g, synth.Generate(pool))
	if err != nil {
		return nil, err
	}
	cnpMove, err := cnpPeerMove(g, peer)
	if err != nil {
		return nil, err
	}
	chs = append(chs, cnpAdded, cnpChanged, cnpMove, cnpDeleted)
	var out []ChangeResult
	for _, ch := range chs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if ch.kind == cnpChanged.kind { // the last two change the policy the first added
			g.pipe.SetClusterNetworkPolicy(cnpBase)
			if _, err := g.step(); err != nil {
				return nil, fmt.Errorf("add %s: %w", cnpBase.Name, err)
			}
		}
		log("%s: %s (%s), %d times", sz.Name, ch.kind, ch.desc, runs)
		res := ChangeResult{Size: sz.Name, Kind: ch.kind, Change: ch.desc}
		var msgs, bytes, added, deleted, objects Sample
		// The label lets a CPU profile (kube-fence bench --cpuprofile) be
		// focused on one kind of change: go tool pprof -tagfocus change=...
		labels := pprof.WithLabels(ctx, pprof.Labels("change", ch.kind))
		pprof.SetGoroutineLabels(labels)
		for range runs {
			ch.do(g.pipe)
			st, err := g.step()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ch.kind, err)
			}
			res.Compile, res.Render, res.Sync = append(res.Compile, st.compile), append(res.Render, st.render), append(res.Sync, st.sync)
			res.ToCommit, res.ToCommitCPU = append(res.ToCommit, st.toCommit), append(res.ToCommitCPU, st.toCommitCPU)
			res.Verify = append(res.Verify, st.verify)
			msgs, bytes = append(msgs, float64(st.res.Messages)), append(bytes, float64(st.res.Bytes))
			a, d := st.res.Delta.Elements()
			added, deleted = append(added, float64(a)), append(deleted, float64(d))
			objects = append(objects, float64(len(st.res.Delta.AddSets)+len(st.res.Delta.AddChains)+len(st.res.Delta.ReplaceRules)))
			if st.full {
				res.Full++
			}
			ch.undo(g.pipe)
			if _, err := g.step(); err != nil {
				return nil, fmt.Errorf("undo %s: %w", ch.kind, err)
			}
		}
		pprof.SetGoroutineLabels(ctx)
		res.Messages, res.Bytes, res.Added, res.Deleted, res.Objects = msgs.Median(), bytes.Median(), added.Median(), deleted.Median(), objects.Median()
		out = append(out, res)
	}
	return out, nil
}

type stepResult struct {
	compile, render, sync, toCommit, toCommitCPU, verify float64
	res                                                  *nft.Result
	full                                                 bool
}

// step commits the changes handed to the pipeline and reads back what the
// transaction changed, timing each part.
func (g *rig) step() (stepResult, error) {
	var st stepResult
	sw := start()
	a, err := g.pipe.Apply()
	st.toCommit, st.toCommitCPU = sw.lap()
	if err != nil {
		return st, err
	}
	st.compile, st.render = ms(a.Compile.Wall), ms(a.Render.Wall)
	st.sync = st.toCommit - st.compile - st.render
	st.res, st.full = a.Result, a.Update.Full
	sw = start()
	chk, err := g.pipe.ReadBack(a)
	st.verify, _ = sw.lap()
	if err != nil {
		return st, err
	}
	if len(chk.Differences) > 0 {
		return st, fmt.Errorf("the kernel differs after the change: %s", strings.Join(chk.Differences, "; "))
	}
	return st, nil
}

// try reports whether ch changes the committed table (and, with grows,
// adds elements), without committing it.
func (g *rig) try(ch change, grows bool) bool {
	ch.do(g.pipe)
	d := g.pipe.Pending()
	ch.undo(g.pipe)
	g.pipe.Pending()
	added, _ := d.Elements()
	return !d.Empty() && (!grows || added > 0)
}

func findPodAdded(local bool) func(*rig, *cluster.Snapshot) (change, error) {
	kind := "pod added (other node)"
	if local {
		kind = "pod added (this node)"
	}
	return func(g *rig, pool *cluster.Snapshot) (change, error) {
		used := map[netip.Addr]bool{}
		last := map[string][]netip.Addr{} // the highest addresses of each node
		for _, p := range g.s.Pods {
			for i, ip := range p.IPs {
				used[ip] = true
				if l := last[p.NodeName]; len(l) <= i {
					last[p.NodeName] = append(l, ip)
				} else if ip.Compare(l[i]) > 0 {
					l[i] = ip
				}
			}
		}
		rnd := rand.New(rand.NewPCG(7, 7))
		for _, i := range rnd.Perm(len(g.s.Pods)) {
			tmpl := g.s.Pods[i]
			if tmpl.HostNetwork || !tmpl.Enforceable() || (tmpl.NodeName == synth.NodeName(0)) != local {
				continue
			}
			p := *tmpl
			p.Name = "bench-added"
			p.IPs = nil
			for _, ip := range last[p.NodeName] { // the next address, as an IPAM hands them out
				next := ip.Next()
				for used[next] {
					next = next.Next()
				}
				p.IPs = append(p.IPs, next)
			}
			ch := change{
				kind: kind,
				desc: fmt.Sprintf("%s on %s like %s (%v)", p.Key(), p.NodeName, tmpl.Key(), p.Labels),
				do:   func(c enforce.Changes) { c.SetPod(&p) },
				undo: func(c enforce.Changes) { c.DeletePod(p.Key()) },
			}
			if g.try(ch, true) {
				return ch, nil
			}
		}
		return change{}, fmt.Errorf("%s: no pod to copy changes the table", kind)
	}
}

func findRelabel(g *rig, pool *cluster.Snapshot) (change, error) {
	rnd := rand.New(rand.NewPCG(8, 8))
	for _, i := range rnd.Perm(len(g.s.Pods)) {
		old := g.s.Pods[i]
		if old.HostNetwork || !old.Enforceable() || old.NodeName == synth.NodeName(0) {
			continue
		}
		for _, j := range rnd.Perm(len(pool.Pods))[:20] {
			l := pool.Pods[j].Labels
			if labels.Equals(l, old.Labels) {
				continue
			}
			p := *old
			p.Labels = l
			ch := change{
				kind: "pod relabelled into a selector",
				desc: fmt.Sprintf("%s on %s: %v -> %v", p.Key(), p.NodeName, old.Labels, l),
				do:   func(c enforce.Changes) { c.SetPod(&p) },
				undo: func(c enforce.Changes) { c.SetPod(old) },
			}
			if g.try(ch, true) { // into a selector: some set gains the pod
				return ch, nil
			}
		}
	}
	return change{}, fmt.Errorf("no relabel changes the table")
}

func findPolicy(g *rig, pool *cluster.Snapshot) (change, error) {
	for _, np := range pool.Policies {
		np := np.DeepCopy()
		np.Name = "bench-added"
		key := np.Namespace + "/" + np.Name
		ch := change{
			kind: "policy added",
			desc: fmt.Sprintf("%s: %s", key, describePolicy(np)),
			do:   func(c enforce.Changes) { c.SetPolicy(np) },
			undo: func(c enforce.Changes) { c.DeletePolicy(key) },
		}
		if g.try(ch, false) {
			return ch, nil
		}
	}
	return change{}, fmt.Errorf("no policy changes the table")
}

func describePolicy(np *networkingv1.NetworkPolicy) string {
	return fmt.Sprintf("podSelector %v, %d ingress and %d egress rules, types %v",
		labelsOf(np), len(np.Spec.Ingress), len(np.Spec.Egress), np.Spec.PolicyTypes)
}

func labelsOf(np *networkingv1.NetworkPolicy) string {
	if len(np.Spec.PodSelector.MatchExpressions) > 0 {
		return "(expressions)"
	}
	return labels.Set(np.Spec.PodSelector.MatchLabels).String()
}

func findNamespace(g *rig, _ *cluster.Snapshot) (change, error) {
	rnd := rand.New(rand.NewPCG(9, 9))
	envs := []string{"prod", "staging", "dev"}
	for _, i := range rnd.Perm(len(g.s.Namespaces)) {
		old := g.s.Namespaces[i]
		for team := range 7 {
			for _, env := range envs {
				l := labels.Merge(old.Labels, labels.Set{"team": fmt.Sprintf("team-%d", team), "env": env})
				if labels.Equals(l, old.Labels) {
					continue
				}
				ns := &cluster.Namespace{Name: old.Name, Labels: l}
				ch := change{
					kind: "namespace relabelled",
					desc: fmt.Sprintf("%s: team=%s,env=%s -> team-%d,%s (%d pods)", old.Name, old.Labels["team"], old.Labels["env"], team, env, podsIn(g.s, old.Name)),
					do:   func(c enforce.Changes) { c.SetNamespace(ns) },
					undo: func(c enforce.Changes) { c.SetNamespace(old) },
				}
				if g.try(ch, true) { // into a namespaceSelector
					return ch, nil
				}
			}
		}
	}
	return change{}, fmt.Errorf("no namespace relabel changes the table")
}

func podsIn(s *cluster.Snapshot, ns string) int {
	return len(slices.DeleteFunc(slices.Clone(s.Pods), func(p *cluster.Pod) bool { return p.Namespace != ns }))
}
