package policy

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Options tune Compile.
type Options struct {
	// DefaultDenyUnknown is copied into the plan: addresses inside the
	// node's pod CIDRs that belong to no known pod are isolated in both
	// directions until their pod shows up in a snapshot.
	DefaultDenyUnknown bool
}

// Compile turns a snapshot into the plan of one node: the node's enforceable
// pods, the profiles deciding each direction in which they are isolated, and
// the node's own addresses.
//
// Compile is pure and deterministic and never panics on odd objects. A part of
// a policy it cannot compile is listed in Plan.Problems and left out in the
// direction that allows less (fail closed): the policy still isolates the
// pods it selects. Only a policy whose own podSelector is invalid is skipped
// whole, since nobody can say which pods it meant.
func Compile(s *cluster.Snapshot, node string, opts Options) *plan.Plan {
	if s == nil {
		return &plan.Plan{Node: node, DefaultDenyUnknown: opts.DefaultDenyUnknown}
	}
	return newCompiler(s, node).plan(opts)
}

// plan builds the node's plan from the compiler's current state.
func (c *compiler) plan(opts Options) *plan.Plan {
	pl := &plan.Plan{Node: c.node, DefaultDenyUnknown: opts.DefaultDenyUnknown, NodeAddrs: c.nodeAddrs, PodCIDRs: c.podCIDRs}
	c.problems = nil
	locals := c.localPods()
	c.selectPolicies(locals)
	c.compileCNPs()
	c.indexEgressNames()
	pl.Pods, pl.Profiles = c.assignProfiles(locals)
	pl.Problems = sortProblems(c.problems)
	return pl
}

// nodeSets returns the addresses and pod CIDRs of the Node object(s) of that
// name.
func nodeSets(nodes []*cluster.Node, node string) (addrs, cidrs addrset.Set) {
	var a, c addrset.Builder
	for _, n := range nodes {
		if n == nil || n.Name != node {
			continue
		}
		for _, ip := range n.Addresses {
			if ip.IsValid() {
				a.AddAddr(ip)
			}
		}
		for _, p := range n.PodCIDRs {
			if p.IsValid() {
				c.AddPrefix(p)
			}
		}
	}
	return a.Set(), c.Set()
}

// localPod is an enforceable pod on the node with the policies selecting it.
type localPod struct {
	pod             *cluster.Pod
	ingress, egress []*compiledPolicy // in policy order
}

// localPods returns the enforceable pods scheduled on the node, sorted by
// key.
func (c *compiler) localPods() []*localPod {
	keys := slices.Sorted(maps.Keys(c.locals))
	out := make([]*localPod, len(keys))
	for i, k := range keys {
		out[i] = &localPod{pod: c.locals[k]}
	}
	return out
}

// selectPolicies finds, for each local pod, the policies selecting it in
// each direction, compiling each such policy once (and, in a Compiler, once
// per version of the object). Policies that cannot select a local pod
// (another namespace, or matchLabels no local pod carries) cannot matter to
// this node and are not even parsed.
func (c *compiler) selectPolicies(locals []*localPod) {
	byNS := map[string][]*localPod{}
	for _, lp := range locals {
		ns := podNamespace(lp.pod)
		byNS[ns] = append(byNS[ns], lp)
	}
	index := make(map[string]*localLabelIndex, len(byNS))
	for ns, pods := range byNS {
		index[ns] = newLocalLabelIndex(pods)
	}
	for _, np := range c.policies {
		ns := policyNamespace(np)
		ix := index[ns]
		if ix == nil {
			continue
		}
		pods, may := ix.candidates(&np.Spec.PodSelector)
		if !may {
			continue
		}
		key := ns + "/" + np.Name
		sel, err := c.selector(&np.Spec.PodSelector)
		if err != nil {
			c.problem(key, field.NewPath("spec", "podSelector"), "invalid selector, policy skipped: "+err.Error())
			continue
		}
		var cp *compiledPolicy
		for _, lp := range pods {
			if !sel.Matches(lp.pod.Labels) {
				continue
			}
			if cp == nil {
				cp = c.compiledPolicy(key, np)
				c.problems = append(c.problems, cp.problems...)
			}
			if cp.isolatesIngress {
				lp.ingress = append(lp.ingress, cp)
			}
			if cp.isolatesEgress {
				lp.egress = append(lp.egress, cp)
			}
		}
	}
}

// compiledPolicy returns the policy compiled, compiling each object once.
func (c *compiler) compiledPolicy(key string, np *networkingv1.NetworkPolicy) *compiledPolicy {
	if cp := c.byPolicy[key]; cp != nil && cp.object == np {
		return cp
	}
	cp := c.compilePolicy(key, np)
	c.byPolicy[key] = cp
	return cp
}

// assignProfiles groups the local pods by what defines their decision and
// builds one profile per group.
func (c *compiler) assignProfiles(locals []*localPod) ([]plan.LocalPod, []*plan.Profile) {
	used := map[string]*cachedProfile{}
	pods := make([]plan.LocalPod, 0, len(locals))
	for _, lp := range locals {
		out := plan.LocalPod{Namespace: podNamespace(lp.pod), Name: lp.pod.Name, IPs: validAddrs(lp.pod.IPs)}
		if ts := c.selectTiers(lp, false); len(lp.ingress) > 0 || ts != nil {
			res := c.resolveIngressNames(lp)
			out.Ingress = c.profileFor(used, plan.Ingress, lp.ingress, res, ts)
		}
		if ts := c.selectTiers(lp, true); len(lp.egress) > 0 || ts != nil {
			out.Egress = c.profileFor(used, plan.Egress, lp.egress, nil, ts)
		}
		pods = append(pods, out)
	}
	c.profiles = used
	profiles := make([]*plan.Profile, 0, len(used))
	for _, cp := range used {
		profiles = append(profiles, cp.profile)
	}
	slices.SortFunc(profiles, func(a, b *plan.Profile) int { return cmp.Compare(a.ID, b.ID) })
	return pods, profiles
}

// cachedProfile is a built profile with what it was built from: the
// compiled policies and every set and named-port map it read. A profile is
// reused until one of them changes.
type cachedProfile struct {
	profile *plan.Profile
	pols    []*compiledPolicy
	rules   []*cnpRule // the ClusterNetworkPolicy rules, admin then baseline
	inputs  []setID
	maps    []*namedMap
	mapVers []uint64
	gen     uint64 // the set store's generation when built
}

func (c *compiler) stillValid(cp *cachedProfile, pols []*compiledPolicy, rules []*cnpRule) bool {
	if !slices.Equal(cp.pols, pols) || !slices.Equal(cp.rules, rules) {
		return false
	}
	for i, m := range cp.maps {
		if m.ver != cp.mapVers[i] {
			return false
		}
	}
	for _, id := range cp.inputs {
		if c.sets.changedSince(id, cp.gen) {
			return false
		}
	}
	return true
}

// profileFor returns the ID of the profile for dir, policies, named-port
// resolution and tiers, building the profile the first time it is needed
// and again only when what it was built from changed.
func (c *compiler) profileFor(used map[string]*cachedProfile, dir plan.Direction, pols []*compiledPolicy, res *resolution, ts *tierSel) plan.ProfileID {
	keys := make([]string, len(pols))
	for i, cp := range pols {
		keys[i] = cp.key
	}
	canon := profileCanonical(dir, keys, res.canonical()) + ts.canonical()
	if cp, ok := used[canon]; ok {
		return cp.profile.ID
	}
	rules := ts.rules()
	if cp, ok := c.profiles[canon]; ok && c.stillValid(cp, pols, rules) {
		used[canon] = cp
		return cp.profile.ID
	}
	cp := &cachedProfile{pols: pols, rules: rules, gen: c.sets.gen}
	c.deps = cp
	p := &plan.Profile{Direction: dir}
	if len(pols) > 0 {
		p = c.buildProfile(dir, pols, res)
	}
	c.addTiers(p, dir, ts)
	c.deps = nil
	p.ID = profileID(canon, dir)
	p.Policies = keys
	cp.profile = p
	used[canon] = cp
	return p.ID
}

// compileCNPs compiles every ClusterNetworkPolicy (each object once) and
// reports its problems: they are cluster-wide, so every node reports them.
func (c *compiler) compileCNPs() {
	for _, p := range c.cnps {
		c.problems = append(c.problems, c.compiledCNP(p).problems...)
	}
}

func sortProblems(ps []plan.Problem) []plan.Problem {
	slices.SortFunc(ps, func(a, b plan.Problem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(ps)
}

// validAddrs returns the usable addresses of a pod, without zones.
func validAddrs(ips []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip.IsValid() {
			out = append(out, ip.WithZone(""))
		}
	}
	return out
}
