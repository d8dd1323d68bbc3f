package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// Fixed chain and set names. Everything per pod or per peer is data in these
// sets and maps; only profiles (groups of pods selected by the same policies)
// add chains.
const (
	chainForward   = "forward"
	chainEgress    = "egress"
	chainIngress   = "ingress"
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
// zero value is ready to use; a Renderer is not safe for concurrent use.
type Renderer struct {
	fixed    []*Chain
	sets     map[string]renderedSet
	profiles map[plan.ProfileID]renderedProfile
	// What this render used, to become the caches for the next.
	usedSets     map[string]renderedSet
	usedProfiles map[plan.ProfileID]renderedProfile
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
func (r *Renderer) Render(pl *plan.Plan) *Table {
	r.usedSets = make(map[string]renderedSet, len(r.sets))
	r.usedProfiles = make(map[plan.ProfileID]renderedProfile, len(r.profiles))
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
	for _, prof := range pl.Profiles {
		r.addProfile(t, prof)
	}
	r.sets, r.profiles = r.usedSets, r.usedProfiles
	r.usedSets, r.usedProfiles = nil, nil
	return t
}

// fixedChains are the chains every table has, the same whatever the plan.
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
				rule(icmpv6NeighbourDiscovery(), accept),
				rule(tcpMidstream(), jump(chainMidstream)),
				rule(jump(chainEgress)),
				rule(jump(chainIngress)),
			},
		},
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
		// Egress of the node's pods: a pod's address sends the packet to
		// its profile (which returns when allowed) or straight back when
		// the pod is not isolated for egress. Unknown addresses of the
		// node's pod CIDRs are dropped (the set is empty unless
		// DefaultDenyUnknown).
		{Name: chainEgress, Rules: []Rule{
			rule(ipSaddr.vmap(setEgressPods4)),
			rule(ip6Saddr.vmap(setEgressPods6)),
			rule(ipSaddr.inSet(setPodCIDRs4), drop),
			rule(ip6Saddr.inSet(setPodCIDRs6), drop),
		}},
		// Ingress: the node itself may always reach its pods; then the same
		// dispatch by destination address.
		{Name: chainIngress, Rules: []Rule{
			rule(ipSaddr.inSet(setNodeAddrs4), accept),
			rule(ip6Saddr.inSet(setNodeAddrs6), accept),
			rule(ipDaddr.vmap(setIngressPods4)),
			rule(ip6Daddr.vmap(setIngressPods6)),
			rule(ipDaddr.inSet(setPodCIDRs4), drop),
			rule(ip6Daddr.inSet(setPodCIDRs6), drop),
		}},
	}
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

// profileChain names the chain deciding a profile.
func profileChain(d plan.Direction, id plan.ProfileID) string {
	return fmt.Sprintf("%s-%s", d, id)
}

// addProfile adds a profile's chain, its any-port peer sets, its port map and
// one chain per port class whose peers are not everyone.
//
//	ingress-<id>:          ip saddr @ingress-<id>-any-v4 accept
//	                       ip6 saddr @ingress-<id>-any-v6 accept
//	                       meta l4proto . th dport vmap @ingress-<id>-ports
//	                       drop
//	ingress-<id>-tcp-80:   ip saddr @ingress-<id>-tcp-80-v4 accept ... drop
//
// Egress is the same with daddr and return (the forward chain goes on to
// check the destination's ingress).
func (r *Renderer) addProfile(t *Table, p *plan.Profile) {
	if prev, ok := r.profiles[p.ID]; ok && prev.profile == p {
		for _, c := range prev.chains {
			t.AddChain(c)
		}
		for _, s := range prev.sets {
			t.AddSet(s)
			if rs, ok := r.sets[s.Name]; ok { // address sets; the port map is the profile's own
				r.usedSets[s.Name] = rs
			}
		}
		r.usedProfiles[p.ID] = prev
		return
	}
	out := renderedProfile{profile: p}
	addChain := func(c *Chain) {
		t.AddChain(c)
		out.chains = append(out.chains, c)
	}
	addSets := func(name4, name6 string, s addrset.Set) {
		a, b := r.addAddrSets(t, name4, name6, s)
		out.sets = append(out.sets, a, b)
	}

	name := profileChain(p.Direction, p.ID)
	peer, allow := ipSaddr, accept
	peer6 := ip6Saddr
	allowVerdict := Verdict{Kind: expr.VerdictAccept}
	if p.Direction == plan.Egress {
		peer, peer6, allow = ipDaddr, ip6Daddr, ret
		allowVerdict = Verdict{Kind: expr.VerdictReturn}
	}
	any4, any6, ports := name+"-any-v4", name+"-any-v6", name+"-ports"
	first := rule(peer.inSet(any4), allow)
	if len(p.Policies) > 0 {
		first = first.withComment(strings.Join(p.Policies, " "))
	}
	addChain(&Chain{Name: name, Rules: []Rule{
		first,
		rule(peer6.inSet(any6), allow),
		rule(protoPortVmap(ports)),
		rule(drop),
	}})
	addSets(any4, any6, p.Any)

	portMap := &Set{Name: ports, Type: PortMap}
	all := addrset.All()
	for _, c := range p.Ports {
		v := allowVerdict
		if !c.Peers.Equal(all) {
			class := fmt.Sprintf("%s-%s", name, portClassName(c))
			v = Verdict{Kind: expr.VerdictGoto, Chain: class}
			addChain(&Chain{Name: class, Rules: []Rule{
				rule(peer.inSet(class+"-v4"), allow),
				rule(peer6.inSet(class+"-v6"), allow),
				rule(drop),
			}})
			addSets(class+"-v4", class+"-v6", c.Peers)
		}
		portMap.Elems = append(portMap.Elems, Elem{
			Key:     portKey(c.Protocol, c.First),
			KeyEnd:  portKey(c.Protocol, c.Last),
			Verdict: &v,
		})
	}
	SortElems(portMap.Elems)
	t.AddSet(portMap)
	out.sets = append(out.sets, portMap)
	r.usedProfiles[p.ID] = out
}

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
// set of the previous render when its addresses are the same.
func (r *Renderer) addAddrSets(t *Table, name4, name6 string, s addrset.Set) (v4, v6 *Set) {
	return r.addrSet(t, name4, Addr4, s.V4()), r.addrSet(t, name6, Addr6, s.V6())
}

func (r *Renderer) addrSet(t *Table, name string, typ SetType, rs []addrset.Range) *Set {
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
