package nft

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Fixed chain and set names. Everything per pod or per peer is data in these
// sets and maps; only profiles (groups of pods selected by the same policies)
// add chains.
const (
	chainForward = "forward"
	chainEgress  = "egress"
	chainIngress = "ingress"

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
func Render(plan *policy.Plan) *Table {
	t := NewTable()
	t.AddChain(&Chain{
		Name: chainForward,
		Hook: &Hook{Hook: "forward", Priority: ForwardPriority, Policy: "accept"},
		Rules: []Rule{
			rule(ctEstablishedRelated(), accept),
			rule(icmpv6NeighbourDiscovery(), accept),
			rule(jump(chainEgress)),
			rule(jump(chainIngress)),
		},
	})
	// Egress of the node's pods: a pod's address sends the packet to its
	// profile (which returns when allowed) or straight back when the pod is
	// not isolated for egress. Unknown addresses of the node's pod CIDRs are
	// dropped (the set is empty unless DefaultDenyUnknown).
	t.AddChain(&Chain{Name: chainEgress, Rules: []Rule{
		rule(ipSaddr.vmap(setEgressPods4)),
		rule(ip6Saddr.vmap(setEgressPods6)),
		rule(ipSaddr.inSet(setPodCIDRs4), drop),
		rule(ip6Saddr.inSet(setPodCIDRs6), drop),
	}})
	// Ingress: the node itself may always reach its pods; then the same
	// dispatch by destination address.
	t.AddChain(&Chain{Name: chainIngress, Rules: []Rule{
		rule(ipSaddr.inSet(setNodeAddrs4), accept),
		rule(ip6Saddr.inSet(setNodeAddrs6), accept),
		rule(ipDaddr.vmap(setIngressPods4)),
		rule(ip6Daddr.vmap(setIngressPods6)),
		rule(ipDaddr.inSet(setPodCIDRs4), drop),
		rule(ip6Daddr.inSet(setPodCIDRs6), drop),
	}})

	addAddrSets(t, setNodeAddrs4, setNodeAddrs6, plan.NodeAddrs)
	unknown := addrset.Set{}
	if plan.DefaultDenyUnknown {
		unknown = plan.PodCIDRs
	}
	addAddrSets(t, setPodCIDRs4, setPodCIDRs6, unknown)

	pods := map[string]*Set{}
	for _, name := range []string{setEgressPods4, setEgressPods6, setIngressPods4, setIngressPods6} {
		typ := PodMap4
		if strings.HasSuffix(name, "v6") {
			typ = PodMap6
		}
		pods[name] = &Set{Name: name, Type: typ}
		t.AddSet(pods[name])
	}
	for _, p := range plan.Pods {
		egress := Verdict{Kind: expr.VerdictReturn}
		if p.Egress != "" {
			egress = Verdict{Kind: expr.VerdictGoto, Chain: profileChain(policy.Egress, p.Egress)}
		}
		ingress := Verdict{Kind: expr.VerdictAccept}
		if p.Ingress != "" {
			ingress = Verdict{Kind: expr.VerdictGoto, Chain: profileChain(policy.Ingress, p.Ingress)}
		}
		for _, ip := range p.IPs {
			e4, i4 := setEgressPods4, setIngressPods4
			if ip.Is6() {
				e4, i4 = setEgressPods6, setIngressPods6
			}
			key := ip.AsSlice()
			pods[e4].Elems = append(pods[e4].Elems, Elem{Key: key, Verdict: &egress, Comment: p.Key()})
			pods[i4].Elems = append(pods[i4].Elems, Elem{Key: key, Verdict: &ingress, Comment: p.Key()})
		}
	}
	for _, s := range pods {
		SortElems(s.Elems)
	}
	for _, prof := range plan.Profiles {
		addProfile(t, prof)
	}
	return t
}

// profileChain names the chain deciding a profile.
func profileChain(d policy.Direction, id policy.ProfileID) string {
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
func addProfile(t *Table, p *policy.Profile) {
	name := profileChain(p.Direction, p.ID)
	peer, allow := ipSaddr, accept
	peer6 := ip6Saddr
	allowVerdict := Verdict{Kind: expr.VerdictAccept}
	if p.Direction == policy.Egress {
		peer, peer6, allow = ipDaddr, ip6Daddr, ret
		allowVerdict = Verdict{Kind: expr.VerdictReturn}
	}
	any4, any6, ports := name+"-any-v4", name+"-any-v6", name+"-ports"
	first := rule(peer.inSet(any4), allow)
	if len(p.Policies) > 0 {
		first = first.withComment(strings.Join(p.Policies, " "))
	}
	t.AddChain(&Chain{Name: name, Rules: []Rule{
		first,
		rule(peer6.inSet(any6), allow),
		rule(protoPortVmap(ports)),
		rule(drop),
	}})
	addAddrSets(t, any4, any6, p.Any)

	portMap := &Set{Name: ports, Type: PortMap}
	all := addrset.All()
	for _, c := range p.Ports {
		v := allowVerdict
		if !c.Peers.Equal(all) {
			class := fmt.Sprintf("%s-%s", name, portClassName(c))
			v = Verdict{Kind: expr.VerdictGoto, Chain: class}
			t.AddChain(&Chain{Name: class, Rules: []Rule{
				rule(peer.inSet(class+"-v4"), allow),
				rule(peer6.inSet(class+"-v6"), allow),
				rule(drop),
			}})
			addAddrSets(t, class+"-v4", class+"-v6", c.Peers)
		}
		portMap.Elems = append(portMap.Elems, Elem{
			Key:     portKey(c.Protocol, c.First),
			KeyEnd:  portKey(c.Protocol, c.Last),
			Verdict: &v,
		})
	}
	SortElems(portMap.Elems)
	t.AddSet(portMap)
}

func portClassName(c policy.PortClass) string {
	proto := strings.ToLower(c.Protocol.String())
	if c.First == c.Last {
		return fmt.Sprintf("%s-%d", proto, c.First)
	}
	return fmt.Sprintf("%s-%d-%d", proto, c.First, c.Last)
}

// portKey encodes protocol . port as the kernel stores a concatenation: each
// field padded to 32 bits, the port in network byte order.
func portKey(proto policy.Protocol, port uint16) []byte {
	return []byte{byte(proto), 0, 0, 0, byte(port >> 8), byte(port), 0, 0}
}

// addAddrSets adds the IPv4 and IPv6 interval sets holding s.
func addAddrSets(t *Table, name4, name6 string, s addrset.Set) {
	t.AddSet(&Set{Name: name4, Type: Addr4, Elems: rangeElems(s.V4())})
	t.AddSet(&Set{Name: name6, Type: Addr6, Elems: rangeElems(s.V6())})
}

func rangeElems(rs []addrset.Range) []Elem {
	if len(rs) == 0 {
		return nil
	}
	es := make([]Elem, len(rs))
	for i, r := range rs {
		es[i] = Elem{Key: r.From.AsSlice(), KeyEnd: r.To.AsSlice()}
	}
	return es
}

// addrFromKey decodes an address key.
func addrFromKey(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}
