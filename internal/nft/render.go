package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/droplog"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Fixed chain and set names. Everything per pod or per peer is data in these
// sets and maps; only profiles (groups of pods selected by the same policies)
// add chains. The walk is split by address family once, at the top of the
// forward chain, so a packet's fixed chains hold only its family's rules.
const (
	chainForward   = "forward"
	chainForward4  = "forward-v4"
	chainForward6  = "forward-v6"
	chainEgress4   = "egress-v4"
	chainEgress6   = "egress-v6"
	chainIngress4  = "ingress-v4"
	chainIngress6  = "ingress-v6"
	chainMidstream = "tcp-midstream"

	setEgressPods4  = "egress-pods-v4"
	setEgressPods6  = "egress-pods-v6"
	setIngressPods4 = "ingress-pods-v4"
	setIngressPods6 = "ingress-pods-v6"
	setNodeAddrs4   = "node-addrs-v4"
	setNodeAddrs6   = "node-addrs-v6"
	setPodCIDRs4    = "pod-cidrs-v4"
	setPodCIDRs6    = "pod-cidrs-v6"
)

// ForwardPriority runs kube-fence's forward chain just before the iptables
// filter chains (priority 0), so a denied packet is dropped before other
// tools spend work on it. Order does not change the verdict: a drop in any
// table is final and every table must accept.
const ForwardPriority = -5

// Render builds the table that enforces plan. It is pure and deterministic.
func Render(pl *plan.Plan) *Table {
	var r Renderer
	return r.Render(pl)
}

// Renderer renders plans exactly as Render does, reusing what it built for
// the previous plan: the chains of a profile that is the same value as
// before (policy.Compiler keeps unchanged profiles), and every set whose
// addresses are the same. Reused objects are shared with the previous
// table, which is what lets Diff skip them in constant time, so a small
// change costs a small render and a small diff however big the table. The
// zero value is ready to use and logs drops with the defaults; a Renderer
// is not safe for concurrent use.
type Renderer struct {
	// DropLog says how denied packets are logged; set it before the first
	// Render.
	DropLog DropLog

	fixed    []*Chain
	sets     map[string]renderedSet
	profiles map[profileKey]renderedProfile
	// What this render used, to become the caches for the next.
	usedSets     map[string]renderedSet
	usedProfiles map[profileKey]renderedProfile
}

// profileKey names a rendered profile: the enforcing one, or the one whose
// chains log what audit policies would deny.
type profileKey struct {
	id    plan.ProfileID
	audit bool
}

type renderedSet struct {
	ranges []addrset.Range
	set    *Set
}

type renderedProfile struct {
	profile *plan.Profile
	chains  []*Chain
	sets    []*Set
}

// Render builds the table that enforces plan.
func (r *Renderer) Render(pl *plan.Plan) *Table { return r.RenderAudit(pl, nil) }

// RenderAudit builds the table that enforces pl and logs the connections
// it allows that audit, the plan with the policies in audit mode enforced,
// would deny (see addAudit). A nil audit adds nothing.
func (r *Renderer) RenderAudit(pl, audit *plan.Plan) *Table {
	r.usedSets = make(map[string]renderedSet, len(r.sets))
	r.usedProfiles = make(map[profileKey]renderedProfile, len(r.profiles))
	t := NewTable()
	for _, c := range r.fixedChains() {
		t.AddChain(c)
	}
	r.addAddrSets(t, setNodeAddrs4, setNodeAddrs6, pl.NodeAddrs)
	unknown := addrset.Set{}
	if pl.DefaultDenyUnknown {
		unknown = pl.PodCIDRs
	}
	r.addAddrSets(t, setPodCIDRs4, setPodCIDRs6, unknown)
	addPodMaps(t, pl.Pods)
	if tiered := tieredEgressPods(pl); len(tiered) > 0 {
		t.AddChain(inputChain())
		addInputMaps(t, pl.Pods, tiered)
	}
	for _, prof := range pl.Profiles {
		r.addProfile(t, prof, false)
	}
	r.addAudit(t, pl, audit)
	r.sets, r.profiles = r.usedSets, r.usedProfiles
	r.usedSets, r.usedProfiles = nil, nil
	return t
}

// fixedChains are the chains every table has, the same whatever the plan.
//
// The first packet of a new connection is what the table costs (the forward
// chain accepts the rest first), so its walk holds as few rules as the
// decision needs: one nfproto dispatch, then only the rules of the packet's
// family. An IPv4 packet never evaluates an ip6 rule, nor the other way round.
func (r *Renderer) fixedChains() []*Chain {
	if r.fixed != nil {
		return r.fixed
	}
	r.fixed = []*Chain{
		{
			Name: chainForward,
			Hook: &Hook{Hook: HookForward, Priority: ForwardPriority, Policy: "accept"},
			Rules: []Rule{
				rule(ctEstablishedRelated(), accept),
				rule(tcpMidstream(), jump(chainMidstream)),
				rule(nfproto(unix.NFPROTO_IPV4), verdict(expr.VerdictGoto, chainForward4)),
				rule(nfproto(unix.NFPROTO_IPV6), verdict(expr.VerdictGoto, chainForward6)),
			},
		},
		// Each family: egress of the source, then ingress of the
		// destination. A chain reached by goto from the base chain ends in
		// its policy, accept.
		{Name: chainForward4, Rules: []Rule{
			rule(jump(chainEgress4)),
			rule(jump(chainIngress4)),
		}},
		{Name: chainForward6, Rules: []Rule{
			rule(icmpv6NeighbourDiscovery(), accept),
			rule(jump(chainEgress6)),
			rule(jump(chainIngress6)),
		}},
		// A TCP connection whose conntrack entry was cut (see
		// internal/conntrack) must not come back as a new flow from its
		// other end: to or from a pod of the node, a TCP packet that is
		// neither part of a known connection nor a SYN is dropped. The pod
		// maps double as the sets of the node's pod addresses.
		{Name: chainMidstream, Rules: []Rule{
			rule(ipSaddr.inSet(setEgressPods4), drop),
			rule(ip6Saddr.inSet(setEgressPods6), drop),
			rule(ipDaddr.inSet(setIngressPods4), drop),
			rule(ip6Daddr.inSet(setIngressPods6), drop),
		}},
	}
	for _, f := range []struct {
		egress, ingress            string
		saddr, daddr               addrField
		pods, ingPods, cidrs, node string
	}{
		{chainEgress4, chainIngress4, ipSaddr, ipDaddr, setEgressPods4, setIngressPods4, setPodCIDRs4, setNodeAddrs4},
		{chainEgress6, chainIngress6, ip6Saddr, ip6Daddr, setEgressPods6, setIngressPods6, setPodCIDRs6, setNodeAddrs6},
	} {
		r.fixed = append(r.fixed,
			// Egress of the node's pods: a pod's address sends the packet
			// to its profile (which returns when allowed) or straight back
			// when the pod is not isolated for egress. Unknown addresses
			// of the node's pod CIDRs are dropped (the set is empty unless
			// DefaultDenyUnknown).
			&Chain{Name: f.egress, Rules: []Rule{
				rule(f.saddr.vmap(f.pods)),
				rule(f.saddr.inSet(f.cidrs), r.deny(droplog.SideUnknownAddress)),
			}},
			// Ingress: the node itself may always reach its pods; then the
			// same dispatch by destination address.
			&Chain{Name: f.ingress, Rules: []Rule{
				rule(f.saddr.inSet(f.node), accept),
				rule(f.daddr.vmap(f.ingPods)),
				rule(f.daddr.inSet(f.cidrs), r.deny(droplog.SideUnknownAddress)),
			}},
		)
	}
	r.fixed = append(r.fixed, r.dropChains()...)
	return r.fixed
}

// addPodMaps adds the verdict maps dispatching each pod address to its
// profiles. Two pods of the plan can share an address for a moment (a
// snapshot taken while one replaces the other); a map holds one element per
// key, so the first pod wins, as in plan.Plan.LocalPod.
func addPodMaps(t *Table, pods []plan.LocalPod) {
	seen := map[netip.Addr]bool{}
	maps := map[string]*Set{}
	for _, name := range []string{setEgressPods4, setEgressPods6, setIngressPods4, setIngressPods6} {
		typ := PodMap4
		if strings.HasSuffix(name, "v6") {
			typ = PodMap6
		}
		maps[name] = &Set{Name: name, Type: typ}
		t.AddSet(maps[name])
	}
	for _, p := range pods {
		egress := Verdict{Kind: expr.VerdictReturn}
		if p.Egress != "" {
			egress = Verdict{Kind: expr.VerdictGoto, Chain: profileChain(plan.Egress, p.Egress)}
		}
		ingress := Verdict{Kind: expr.VerdictAccept}
		if p.Ingress != "" {
			ingress = Verdict{Kind: expr.VerdictGoto, Chain: profileChain(plan.Ingress, p.Ingress)}
		}
		for _, ip := range p.IPs {
			if seen[ip] {
				continue
			}
			seen[ip] = true
			e4, i4 := setEgressPods4, setIngressPods4
			if ip.Is6() {
				e4, i4 = setEgressPods6, setIngressPods6
			}
			key, comment := ip.AsSlice(), shortComment(p.Key())
			maps[e4].Elems = append(maps[e4].Elems, Elem{Key: key, Verdict: &egress, Comment: comment})
			maps[i4].Elems = append(maps[i4].Elems, Elem{Key: key, Verdict: &ingress, Comment: comment})
		}
	}
	for _, s := range maps {
		SortElems(s.Elems)
	}
}

// tieredEgressPods returns the keys of the pods whose egress profile has
// ClusterNetworkPolicy rules, which the input hook sends through it.
func tieredEgressPods(pl *plan.Plan) map[string]bool {
	out := map[string]bool{}
	for _, p := range pl.Pods {
		if p.Egress == "" {
			continue
		}
		if prof := pl.Profile(p.Egress); prof != nil && prof.Tiered() {
			out[p.Key()] = true
		}
	}
	return out
}

// addInputMaps adds the verdict maps of the input hook: each address of the
// tiered pods to their egress profile. The first pod of an address wins, as
// in addPodMaps, so an address another pod holds first stays out.
func addInputMaps(t *Table, pods []plan.LocalPod, tiered map[string]bool) {
	m4, m6 := &Set{Name: setInputPods4, Type: PodMap4}, &Set{Name: setInputPods6, Type: PodMap6}
	seen := map[netip.Addr]bool{}
	for _, p := range pods {
		v := Verdict{Kind: expr.VerdictGoto, Chain: profileChain(plan.Egress, p.Egress)}
		for _, ip := range p.IPs {
			if seen[ip] {
				continue
			}
			seen[ip] = true
			if !tiered[p.Key()] {
				continue
			}
			m := m4
			if ip.Is6() {
				m = m6
			}
			m.Elems = append(m.Elems, Elem{Key: ip.AsSlice(), Verdict: &v, Comment: shortComment(p.Key())})
		}
	}
	SortElems(m4.Elems)
	SortElems(m6.Elems)
	t.AddSet(m4)
	t.AddSet(m6)
}

// profileChain names the chain deciding a profile.
func profileChain(d plan.Direction, id plan.ProfileID) string {
	return fmt.Sprintf("%s-%s", d, id)
}

// addProfile adds a profile's chains and sets. A profile without
// ClusterNetworkPolicy rules is its NetworkPolicy part alone (npRules); one
// with them is described at addTieredProfile.
func (r *Renderer) addProfile(t *Table, p *plan.Profile, audit bool) {
	key := profileKey{p.ID, audit}
	if prev, ok := r.profiles[key]; ok && prev.profile == p {
		for _, c := range prev.chains {
			t.AddChain(c)
		}
		for _, s := range prev.sets {
			if _, ok := r.usedSets[s.Name]; ok {
				continue // a peer's set another profile added
			}
			if rs, ok := r.sets[s.Name]; ok { // address sets; the port maps are the profile's own
				r.usedSets[s.Name] = rs
				s = rs.set
			}
			t.AddSet(s)
		}
		r.usedProfiles[key] = prev
		return
	}
	b := &profileBuilder{r: r, t: t, out: renderedProfile{profile: p}, name: profileChain(p.Direction, p.ID), dir: p.Direction, audit: audit}
	if audit {
		b.name = auditPrefix + b.name
	}
	if p.Tiered() {
		b.addTiered(p)
	} else {
		rules := b.npRules(p)
		if len(p.Policies) > 0 {
			rules[0] = rules[0].withComment(strings.Join(p.Policies, " "))
		}
		b.addChain(&Chain{Name: b.name, Rules: rules})
	}
	r.usedProfiles[key] = b.out
}

// profileBuilder collects the chains and sets of one profile.
type profileBuilder struct {
	r    *Renderer
	t    *Table
	out  renderedProfile
	name string // the profile's chain
	dir  plan.Direction
	// audit builds the chains that log what audit policies would deny:
	// they decide nothing, allowing and denying both return.
	audit bool
}

// deny is the statement ending the profile's paths that deny.
func (b *profileBuilder) deny() stmt {
	side := droplog.SideIngress
	if b.dir == plan.Egress {
		side = droplog.SideEgress
	}
	if b.audit {
		return b.r.wouldDeny(side)
	}
	return b.r.deny(side)
}

func (b *profileBuilder) addChain(c *Chain) {
	b.t.AddChain(c)
	b.out.chains = append(b.out.chains, c)
}

func (b *profileBuilder) addSets(name4, name6 string, s addrset.Set) {
	n4, t4 := peerSet(name4, Addr4, s.V4())
	n6, t6 := peerSet(name6, Addr6, s.V6())
	b.out.sets = append(b.out.sets, b.r.addrSet(b.t, n4, t4, s.V4()), b.r.addrSet(b.t, n6, t6, s.V6()))
}

func (b *profileBuilder) addSet(s *Set) {
	b.t.AddSet(s)
	b.out.sets = append(b.out.sets, s)
}

// peerFields returns the address fields holding the peer of the profile's
// direction, and the verdict that allows.
func (b *profileBuilder) peerFields() (v4, v6 addrField, allow stmt, allowVerdict Verdict) {
	if b.audit {
		v4, v6, _, _ = b.direction()
		return v4, v6, ret, Verdict{Kind: expr.VerdictReturn}
	}
	return b.direction()
}

// direction returns the peer's address fields and the enforcing verdict
// that allows.
func (b *profileBuilder) direction() (v4, v6 addrField, allow stmt, allowVerdict Verdict) {
	if b.dir == plan.Egress {
		return ipDaddr, ip6Daddr, ret, Verdict{Kind: expr.VerdictReturn}
	}
	return ipSaddr, ip6Saddr, accept, Verdict{Kind: expr.VerdictAccept}
}

// matchSets returns the rules that end in verdict when the profile's peer
// address is in s, held by the sets name4 (IPv4) and name6 (IPv6): one rule
// per family that s has addresses of. A set with no address of a family
// would cost every packet of that family a lookup that never matches, so
// its rule is left out; the chain holding these rules must therefore be
// rendered again whenever s gains or loses a family, which a profile's
// chains are, since they are rebuilt whenever the profile changes (a
// transaction that replaces the few rules of that one chain). The set's
// name and kind (hash or interval) come from peerSet, as in addSets.
//
// It adds the sets to the table. This is the one place a profile chain
// matches an address set pair.
func (b *profileBuilder) matchSets(name4, name6 string, s addrset.Set, verdict stmt) []Rule {
	peer, peer6, _, _ := b.peerFields()
	var out []Rule
	if v4 := s.V4(); len(v4) > 0 {
		name, _ := peerSet(name4, Addr4, v4)
		out = append(out, rule(peer.inSet(name), verdict))
	}
	if v6 := s.V6(); len(v6) > 0 {
		name, _ := peerSet(name6, Addr6, v6)
		out = append(out, rule(peer6.inSet(name), verdict))
	}
	b.addSets(name4, name6, s)
	return out
}

// npRules returns the rules of a profile's NetworkPolicy part: the peers
// allowed on any port, its port map and one chain per port class whose
// peers are not everyone.
//
//	ingress-<id>:          ip saddr @peer-<key>-v4 accept       (a pair per peer allowed on any port)
//	                       ip6 saddr @peer-<key>-v6 accept
//	                       meta l4proto . th dport vmap @ingress-<id>-ports
//	                       goto drop-ingress
//	ingress-<id>-tcp-80:   ip saddr @peer-<key>-v4 accept ...   (a pair per peer of the class)
//	                       goto drop-ingress
//
// Egress is the same with daddr and return (the forward chain goes on to
// check the destination's ingress). A peer's sets are named by what the
// peer means (plan.PeerSet) and shared by every profile that uses it, so
// a profile adds rules, not addresses, for peers other profiles have.
// Beyond maxParts peers, a union is one pair of the profile's own sets
// (ingress-<id>-any-v4, ingress-<id>-tcp-80-v4): see matchPeers.
func (b *profileBuilder) npRules(p *plan.Profile) []Rule {
	_, _, allow, allowVerdict := b.peerFields()
	name := b.name
	ports := name + "-ports"
	rules := b.matchPeers(name+"-any", p.Any, p.AnyParts, allow)
	rules = append(rules, rule(protoPortVmap(ports)), rule(b.deny()))

	portMap := &Set{Name: ports, Type: PortMap}
	all := addrset.All()
	// Port classes with the same peers share the first one's chain and
	// sets: a rule of many separate ports costs its peers once, not once
	// a port (2,001 ports and 2,000 ipBlocks would otherwise be 4 million
	// elements).
	peers := make([]addrset.Set, len(p.Ports))
	for i, c := range p.Ports {
		peers[i] = c.Peers
	}
	first := addrset.Distinct(peers)
	for i, c := range p.Ports {
		v := allowVerdict
		if !c.Peers.Equal(all) {
			class := fmt.Sprintf("%s-%s", name, portClassName(p.Ports[first[i]]))
			v = Verdict{Kind: expr.VerdictGoto, Chain: class}
			if first[i] == i {
				classRules := b.matchPeers(class, c.Peers, c.Parts, allow)
				b.addChain(&Chain{Name: class, Rules: append(classRules, rule(b.deny()))})
			}
		}
		portMap.Elems = append(portMap.Elems, Elem{
			Key:     portKey(c.Protocol, c.First),
			KeyEnd:  portKey(c.Protocol, c.Last),
			Verdict: &v,
		})
	}
	SortElems(portMap.Elems)
	b.addSet(portMap)
	return rules
}

// maxParts is the most peers a union is matched by one rule pair each. A
// first packet pays about 0.1 µs per rule with a set lookup it passes
// (docs/benchmarks.md (d)), so a profile of a few peers keeps a near
// constant first-packet cost, while one of thousands (a rule per ipBlock)
// stays a single lookup in a union of its own.
const maxParts = 8

// peerSetsPrefix starts the names of the sets shared by meaning.
const peerSetsPrefix = "peer-"

// matchPeers returns the rules ending in verdict for the peers of a union:
// a pair per part, matching the part's shared sets, when there are at most
// maxParts; otherwise, or for a plan that does not say the parts, a pair
// matching the union in sets of its own, named by prefix. A union that is
// empty and has no parts needs no rule.
func (b *profileBuilder) matchPeers(prefix string, union addrset.Set, parts []plan.PeerSet, verdict stmt) []Rule {
	if len(parts) == 0 && union.IsEmpty() {
		return nil
	}
	if !byParts(parts) {
		return b.matchSets(prefix+"-v4", prefix+"-v6", union, verdict)
	}
	out := make([]Rule, 0, 2*len(parts))
	for _, pt := range parts {
		name := peerSetsPrefix + pt.Key
		out = append(out, b.matchSets(name+"-v4", name+"-v6", pt.Addrs, verdict)...)
	}
	return out
}

// byParts reports whether a union is matched by its parts' shared sets
// rather than a set of its own.
func byParts(parts []plan.PeerSet) bool { return len(parts) > 0 && len(parts) <= maxParts }

func portClassName(c plan.PortClass) string {
	proto := strings.ToLower(c.Protocol.String())
	if c.First == c.Last {
		return fmt.Sprintf("%s-%d", proto, c.First)
	}
	return fmt.Sprintf("%s-%d-%d", proto, c.First, c.Last)
}

// portKey encodes protocol . port as the kernel stores a concatenation: each
// field padded to 32 bits, the port in network byte order.
func portKey(proto plan.Protocol, port uint16) []byte {
	return []byte{byte(proto), 0, 0, 0, byte(port >> 8), byte(port), 0, 0}
}

// addAddrSets adds the IPv4 and IPv6 interval sets holding s, reusing the
// set this render or the previous one made under the name when its
// addresses are the same: a peer's set shared by many profiles is one Set,
// and checking it costs constant time for each profile after the first.
func (r *Renderer) addAddrSets(t *Table, name4, name6 string, s addrset.Set) (v4, v6 *Set) {
	return r.addrSet(t, name4, Addr4, s.V4()), r.addrSet(t, name6, Addr6, s.V6())
}

func (r *Renderer) addrSet(t *Table, name string, typ SetType, rs []addrset.Range) *Set {
	if cur, ok := r.usedSets[name]; ok && sameRanges(cur.ranges, rs) {
		return cur.set
	}
	prev, ok := r.sets[name]
	if !ok || !sameRanges(prev.ranges, rs) {
		prev = renderedSet{ranges: rs, set: &Set{Name: name, Type: typ, Ranges: rs}}
	}
	r.usedSets[name] = prev
	t.AddSet(prev.set)
	return prev.set
}

// sameRanges compares range lists, in constant time when they share their
// backing array, as the sets of an unchanged plan do.
func sameRanges(a, b []addrset.Range) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

// rangeElems turns ranges into elements, with all keys in one allocation:
// sets run to thousands of ranges.
func rangeElems(rs []addrset.Range) []Elem {
	if len(rs) == 0 {
		return nil
	}
	size := 4
	if rs[0].From.Is6() {
		size = 16
	}
	keys := make([]byte, 2*size*len(rs))
	es := make([]Elem, len(rs))
	put := func(b []byte, a netip.Addr) []byte {
		if size == 4 {
			v := a.As4()
			copy(b, v[:])
		} else {
			v := a.As16()
			copy(b, v[:])
		}
		return b
	}
	for i, r := range rs {
		at := 2 * size * i
		es[i] = Elem{Key: put(keys[at:at+size:at+size], r.From), KeyEnd: put(keys[at+size:at+2*size:at+2*size], r.To)}
	}
	return es
}

// addrFromKey decodes an address key.
func AddrFromKey(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

// peerSet names the set holding one family's part of a peer set, and gives
// its type. Single addresses only (pods, /32 and /128 ipBlocks: most peers)
// go to a hash set, one lookup whatever its size; anything with a range to
// an interval set, which the kernel searches by bisection: 0.47 µs for
// 15,000 addresses against 0.13 µs hashed (docs/benchmarks.md (d')). The
// kind is in the name, so a set changing kind is a new set replacing the
// old one in the same small transaction (the profile's chains change with
// it), never a set changing type, which only a rebuild could do.
func peerSet(name string, typ SetType, rs []addrset.Range) (string, SetType) {
	if len(rs) == 0 {
		return name, typ
	}
	for _, r := range rs {
		if r.From != r.To {
			return name, typ
		}
	}
	if typ == Addr4 {
		return name + hostSuffix, Host4
	}
	return name + hostSuffix, Host6
}

// hostSuffix ends the name of a peer set of single addresses.
const hostSuffix = "-h"
