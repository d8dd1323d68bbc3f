package policy

import (
	"cmp"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
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
func Compile(s *cluster.Snapshot, node string, opts Options) *Plan {
	pl := &Plan{Node: node, DefaultDenyUnknown: opts.DefaultDenyUnknown}
	if s == nil {
		return pl
	}
	c := newCompiler(s)
	pl.NodeAddrs, pl.PodCIDRs = nodeSets(s, node)

	locals := c.localPods(node)
	c.selectPolicies(locals)
	c.indexEgressNames()
	pl.Pods, pl.Profiles = c.assignProfiles(locals)
	pl.Problems = sortProblems(c.problems)
	return pl
}

// nodeSets returns the addresses and pod CIDRs of the Node object(s) of that
// name.
func nodeSets(s *cluster.Snapshot, node string) (addrs, cidrs addrset.Set) {
	var a, c addrset.Builder
	for _, n := range s.Nodes {
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

// localPods returns the enforceable pods scheduled on node, sorted by key,
// one per key.
func (c *compiler) localPods(node string) []*localPod {
	var out []*localPod
	for _, pods := range c.podsByNS {
		for _, p := range pods {
			if p.NodeName == node {
				out = append(out, &localPod{pod: p})
			}
		}
	}
	key := func(lp *localPod) string { return podNamespace(lp.pod) + "/" + lp.pod.Name }
	slices.SortStableFunc(out, func(a, b *localPod) int { return cmp.Compare(key(a), key(b)) })
	return slices.CompactFunc(out, func(a, b *localPod) bool { return key(a) == key(b) })
}

// selectPolicies finds, for each local pod, the policies selecting it in
// each direction, compiling each such policy once. Policies that cannot
// select a local pod (another namespace, or matchLabels no local pod
// carries) cannot matter to this node and are not even parsed.
func (c *compiler) selectPolicies(locals []*localPod) {
	byNS := map[string][]*localPod{}
	for _, lp := range locals {
		byNS[podNamespace(lp.pod)] = append(byNS[podNamespace(lp.pod)], lp)
	}
	pols := make([]*networkingv1.NetworkPolicy, 0, len(c.snap.Policies))
	for _, np := range c.snap.Policies {
		if np != nil && len(byNS[policyNamespace(np)]) > 0 {
			pols = append(pols, np)
		}
	}
	slices.SortStableFunc(pols, func(a, b *networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(policyNamespace(a), policyNamespace(b)), cmp.Compare(a.Name, b.Name))
	})
	labelsByNS := map[string][]labels.Set{}
	for ns, lps := range byNS {
		for _, lp := range lps {
			labelsByNS[ns] = append(labelsByNS[ns], lp.pod.Labels)
		}
	}
	for _, np := range pols {
		ns := policyNamespace(np)
		if !mayMatchAny(&np.Spec.PodSelector, labelsByNS[ns]) {
			continue
		}
		key := ns + "/" + np.Name
		sel, err := c.selector(&np.Spec.PodSelector)
		if err != nil {
			c.problem(key, field.NewPath("spec", "podSelector"), "invalid selector, policy skipped: "+err.Error())
			continue
		}
		var cp *compiledPolicy
		for _, lp := range byNS[ns] {
			if !sel.Matches(lp.pod.Labels) {
				continue
			}
			if cp == nil {
				cp = c.compilePolicy(key, np)
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

// assignProfiles groups the local pods by what defines their decision and
// builds one profile per group.
func (c *compiler) assignProfiles(locals []*localPod) ([]LocalPod, []*Profile) {
	byKey := map[string]*Profile{}
	pods := make([]LocalPod, 0, len(locals))
	for _, lp := range locals {
		out := LocalPod{Namespace: podNamespace(lp.pod), Name: lp.pod.Name, IPs: validAddrs(lp.pod.IPs)}
		if len(lp.ingress) > 0 {
			res := c.resolveIngressNames(lp)
			out.Ingress = c.profileFor(byKey, Ingress, lp.ingress, res)
		}
		if len(lp.egress) > 0 {
			out.Egress = c.profileFor(byKey, Egress, lp.egress, nil)
		}
		pods = append(pods, out)
	}
	profiles := make([]*Profile, 0, len(byKey))
	for _, p := range byKey {
		profiles = append(profiles, p)
	}
	slices.SortFunc(profiles, func(a, b *Profile) int { return cmp.Compare(a.ID, b.ID) })
	return pods, profiles
}

// profileFor returns the ID of the profile for dir, policies and named-port
// resolution, building the profile the first time it is needed.
func (c *compiler) profileFor(byKey map[string]*Profile, dir Direction, pols []*compiledPolicy, res *resolution) ProfileID {
	keys := make([]string, len(pols))
	for i, cp := range pols {
		keys[i] = cp.key
	}
	canon := profileCanonical(dir, keys, res.canonical())
	if p, ok := byKey[canon]; ok {
		return p.ID
	}
	p := c.buildProfile(dir, pols, res)
	p.ID = profileID(canon, dir)
	p.Policies = keys
	byKey[canon] = p
	return p.ID
}

func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Message, b.Message))
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
