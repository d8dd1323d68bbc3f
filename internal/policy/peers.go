package policy

import (
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
)

// peer is a compiled NetworkPolicyPeer: either the pods its selectors pick,
// or the addresses of its ipBlock.
type peer struct {
	id    setID         // every address the peer stands for
	key   string        // peerKey of what the peer means, the same in every compiler
	block bool          // an ipBlock peer
	addrs addrset.Spans // an ipBlock peer's addresses

	// A selector peer: the enforceable pods it picks, and how it picks
	// them, so a Compiler can decide again for one pod.
	pods   []*cluster.Pod
	ns     string          // without a namespaceSelector: the policy's namespace
	nsSel  labels.Selector // with one
	podSel labels.Selector
	named  []*namedMap // the named ports resolved against its pods
}

func (c *compiler) compilePeer(key, ns string, path *field.Path, p *networkingv1.NetworkPolicyPeer) (*peer, bool) {
	switch {
	case p.IPBlock != nil && (p.PodSelector != nil || p.NamespaceSelector != nil):
		c.problem(key, path, "may not specify both ipBlock and another peer; peer ignored")
		return nil, false
	case p.IPBlock != nil:
		set, ok := c.ipBlock(key, path.Child("ipBlock"), p.IPBlock)
		if !ok {
			return nil, false
		}
		// One peer per distinct block, so what is memoized per peer (named
		// ports) is shared by every policy using the block.
		memo := "block=" + set.String()
		if pr, ok := c.peers[memo]; ok {
			return pr, true
		}
		sp := addrset.SpansOf(set)
		pr := &peer{addrs: sp, id: c.sets.intern(sp), block: true, key: peerKey(memo)}
		c.peers[memo] = pr
		return pr, true
	case p.PodSelector == nil && p.NamespaceSelector == nil:
		c.problem(key, path, "must specify a peer; peer ignored")
		return nil, false
	}
	return c.selectorPeer(key, ns, path, p.PodSelector, p.NamespaceSelector)
}

// selectorPeer resolves a podSelector and/or namespaceSelector peer. Without
// a namespaceSelector the peer lives in the policy's namespace; without a
// podSelector it is every pod of the selected namespaces.
func (c *compiler) selectorPeer(key, ns string, path *field.Path, podSel, nsSel *metav1.LabelSelector) (*peer, bool) {
	pods := labels.Everything()
	if podSel != nil {
		s, err := c.selector(podSel)
		if err != nil {
			c.problem(key, path.Child("podSelector"), "invalid selector, peer ignored: "+err.Error())
			return nil, false
		}
		pods = s
	}
	memo := "ns=" + ns + "\x00pods=" + pods.String()
	var nsSelector labels.Selector
	if nsSel != nil {
		s, err := c.selector(nsSel)
		if err != nil {
			c.problem(key, path.Child("namespaceSelector"), "invalid selector, peer ignored: "+err.Error())
			return nil, false
		}
		nsSelector = s
		memo = "nssel=" + s.String() + "\x00pods=" + pods.String()
	}
	if p, ok := c.peers[memo]; ok {
		return p, true
	}
	namespaces := []string{ns}
	if nsSelector != nil {
		namespaces = c.selectNamespaces(nsSelector)
	}
	p := &peer{pods: c.selectPods(namespaces, pods), podSel: pods, key: peerKey(memo)}
	if nsSelector != nil {
		p.nsSel = nsSelector
		c.nsPeers = append(c.nsPeers, p)
	} else {
		p.ns = ns
		c.peersByNS[ns] = append(c.peersByNS[ns], p)
	}
	var b addrset.PointBuilder
	b.Grow(2 * len(p.pods))
	for _, pod := range p.pods {
		for _, ip := range pod.IPs {
			if ip.IsValid() {
				b.AddAddr(ip)
			}
		}
	}
	p.id = c.sets.leaf(b.Build())
	c.leaves[p.id] = leafDef{peer: p}
	c.peers[memo] = p
	return p, true
}

// selects reports whether a selector peer picks an enforceable pod, with
// the namespace labels as they are now.
func (c *compiler) selects(p *peer, pod *cluster.Pod) bool {
	ns := podNamespace(pod)
	if p.nsSel == nil {
		if ns != p.ns {
			return false
		}
	} else if !p.nsSel.Matches(c.nsLabels[ns]) {
		return false
	}
	return p.podSel.Matches(pod.Labels)
}

// selectPods returns the enforceable pods of namespaces that sel matches.
// A peer spanning many namespaces takes its candidates from the label index
// (the pods carrying one of the label values an equality requirement asks
// for) rather than testing every pod of every namespace.
func (c *compiler) selectPods(namespaces []string, sel labels.Selector) []*cluster.Pod {
	var out []*cluster.Pod
	total := 0
	for _, n := range namespaces {
		total += len(c.podsByNS[n])
	}
	if cands, ok := c.labelCandidates(sel, total); ok {
		inNS := make(map[string]bool, len(namespaces))
		for _, n := range namespaces {
			inNS[n] = true
		}
		for _, p := range cands {
			if inNS[podNamespace(p)] && sel.Matches(p.Labels) {
				out = append(out, p)
			}
		}
		return out
	}
	everything := sel.Empty()
	for _, n := range namespaces {
		for _, p := range c.podsByNS[n] {
			if everything || sel.Matches(p.Labels) {
				out = append(out, p)
			}
		}
	}
	return out
}

// labelIndex returns the enforceable pods by their value of one label key,
// indexing a key the first time a selector asks for it.
func (c *compiler) labelIndex(key string) map[string][]*cluster.Pod {
	if idx, ok := c.byLabel[key]; ok {
		return idx
	}
	idx := map[string][]*cluster.Pod{}
	for _, pods := range c.podsByNS {
		for _, p := range pods {
			if v, ok := p.Labels[key]; ok {
				idx[v] = append(idx[v], p)
			}
		}
	}
	c.byLabel[key] = idx
	return idx
}

// labelCandidates returns the pods the label index offers for sel when that
// is fewer than scanning total pods.
func (c *compiler) labelCandidates(sel labels.Selector, total int) ([]*cluster.Pod, bool) {
	const worthIndexing = 512
	reqs, ok := sel.Requirements()
	if !ok || total < worthIndexing {
		return nil, false
	}
	var best []*cluster.Pod
	found := false
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
		default:
			continue
		}
		byValue := c.labelIndex(r.Key())
		var cands []*cluster.Pod
		for _, v := range r.ValuesUnsorted() {
			cands = append(cands, byValue[v]...)
		}
		if !found || len(cands) < len(best) {
			best, found = cands, true
		}
	}
	return best, found && len(best) < total
}

// nsSelection is the namespaces one namespaceSelector picks.
type nsSelection struct {
	sel   labels.Selector
	names []string
}

// selectNamespaces returns the namespaces a namespaceSelector picks. Order
// does not matter: the results end up in canonical address sets.
func (c *compiler) selectNamespaces(sel labels.Selector) []string {
	key := sel.String()
	if ns, ok := c.nsSelections[key]; ok {
		return ns.names
	}
	var out []string
	for name, l := range c.nsLabels {
		if sel.Matches(l) {
			out = append(out, name)
		}
	}
	c.nsSelections[key] = &nsSelection{sel: sel, names: out}
	return out
}

// ipBlock compiles an ipBlock to cidr minus its excepts. A cidr with bits set
// beyond its length is read as its network, as API servers before strict CIDR
// validation stored it. An except that cannot be parsed drops the whole peer
// (leaving it out would allow what the author excluded); an except that is not
// a strict subset of cidr is reported and still subtracted, which can only
// allow less.
func (c *compiler) ipBlock(key string, path *field.Path, b *networkingv1.IPBlock) (addrset.Set, bool) {
	cidr, msg := parseCIDR(b.CIDR)
	if msg != "" {
		c.problem(key, path.Child("cidr"), msg+"; peer ignored")
		return addrset.Set{}, false
	}
	var except addrset.Builder
	for i, e := range b.Except {
		ep, msg := parseCIDR(e)
		if msg != "" {
			c.problem(key, path.Child("except").Index(i), msg+"; peer ignored")
			return addrset.Set{}, false
		}
		if ep.Addr().Is4() != cidr.Addr().Is4() || ep.Bits() <= cidr.Bits() || !cidr.Contains(ep.Addr()) {
			c.problem(key, path.Child("except").Index(i),
				`"`+e+`" is not a strict subset of cidr "`+b.CIDR+`"; subtracted anyway`)
		}
		except.AddPrefix(ep)
	}
	return addrset.Of(cidr).Subtract(except.Set()), true
}

// parseCIDR parses an ipBlock CIDR, returning a message when it is unusable.
// IPv4-mapped IPv6 prefixes are refused: the API server refuses them, and
// older ones read them as IPv4 while the kernel matches them as IPv6.
func parseCIDR(s string) (netip.Prefix, string) {
	if s == "" {
		return netip.Prefix{}, "required"
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, `invalid CIDR "` + s + `"`
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, `"` + s + `" is an IPv4-mapped IPv6 CIDR`
	}
	return p.Masked(), ""
}
