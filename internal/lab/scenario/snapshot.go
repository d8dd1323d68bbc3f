package scenario

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// DefaultNode names the one node of a scenario that declares no Node.
const DefaultNode = "lab-node"

// The address plan. Node i (0-based, in document order) gets the pod CIDRs
// 10.42.i.0/24 and fd00:10:42:i::/64 unless its Node object declares
// spec.podCIDRs. The first address of each pod CIDR is the node's gateway;
// pods without status.podIPs get the next free addresses, in document order.
// When there are several nodes they are joined by a fabric link where node i
// is 10.41.0.(i+1)/24 and fd00:10:41::(i+1)/64.
var (
	fabricV4 = netip.MustParsePrefix("10.41.0.0/24")
	fabricV6 = netip.MustParsePrefix("fd00:10:41::/64")
)

// DefaultPodCIDRs returns the pod CIDRs of node i when its Node object
// declares none.
func DefaultPodCIDRs(i int) []netip.Prefix {
	v6 := [16]byte{0xfd, 0x00, 0x00, 0x10, 0x00, 0x42, byte(i >> 8), byte(i)}
	return []netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 42, byte(i), 0}), 24),
		netip.PrefixFrom(netip.AddrFrom16(v6), 64),
	}
}

// Gateways returns the gateway address of each pod CIDR: its first address.
func Gateways(cidrs []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, c := range cidrs {
		out = append(out, c.Masked().Addr().Next())
	}
	return out
}

// FabricAddrs returns node i's addresses on the link joining the nodes,
// with the fabric's prefix length.
func FabricAddrs(i int) []netip.Prefix {
	v4 := fabricV4.Addr().As4()
	v4[3] = byte(i + 1)
	v6 := fabricV6.Addr().As16()
	v6[14], v6[15] = byte((i+1)>>8), byte(i+1)
	return []netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4(v4), fabricV4.Bits()),
		netip.PrefixFrom(netip.AddrFrom16(v6), fabricV6.Bits()),
	}
}

// Objects converts the scenario's objects into snapshot values as they are,
// as the agent sees them through the API server: node addresses from
// status.addresses, pods without addresses left without. Every call returns
// new values; every unusable field is reported.
func (s *Scenario) Objects() (*cluster.Snapshot, error) {
	snap := &cluster.Snapshot{}
	var problems []string
	for _, ns := range s.Namespaces {
		snap.Namespaces = append(snap.Namespaces, cluster.NamespaceFromAPI(ns))
	}
	for _, n := range s.Nodes {
		node, err := cluster.NodeFromAPI(n)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		snap.Nodes = append(snap.Nodes, node)
	}
	for _, p := range s.Pods {
		pod, err := cluster.PodFromAPI(p)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		snap.Pods = append(snap.Pods, pod)
	}
	for _, np := range s.Policies {
		snap.Policies = append(snap.Policies, np.DeepCopy())
	}
	snap.ClusterNetworkPolicies = clusterPoliciesSnapshot(s.ClusterNetworkPolicies)
	if len(problems) > 0 {
		return nil, &InvalidError{Problems: problems}
	}
	return snap, nil
}

// Snapshot converts the scenario into the complete cluster snapshot the lab
// builds (Objects, then Normalize with the lab's addresses). Every call
// returns new values.
func (s *Scenario) Snapshot() (*cluster.Snapshot, error) {
	snap, err := s.Objects()
	if err != nil {
		return nil, err
	}
	for _, n := range snap.Nodes {
		n.Addresses = nil // the lab's own addresses replace them
	}
	families := map[string][]corev1.IPFamily{}
	for i, p := range s.Pods { // snap.Pods[i] is p converted
		if v, ok := p.Annotations[FamiliesAnnotation]; ok {
			families[snap.Pods[i].Key()], _ = parseFamilies(v) // validated by Parse
		}
	}
	if err := normalize(snap, families); err != nil {
		return nil, err
	}
	return snap, nil
}

// Normalize completes a snapshot in place so the lab can build it:
//   - namespaces that pods or policies use but the snapshot lacks are added,
//     and every namespace carries the kubernetes.io/metadata.name label;
//   - without nodes, one node named DefaultNode is added and hosts every pod
//     (spec.nodeName is rewritten); with nodes, a pod without a node goes to
//     the only node, and naming an unknown node is an error;
//   - nodes without pod CIDRs get DefaultPodCIDRs, and every node's addresses
//     become the lab's: its fabric addresses (several nodes) and gateways;
//   - a pod without a phase is Running; a Running pod without addresses gets
//     one per family of its node's pod CIDRs (the next free ones); a
//     hostNetwork pod gets its node's addresses.
//
// Addresses already set are kept, so normalizing again changes nothing and
// pods keep their addresses when others are added.
func Normalize(snap *cluster.Snapshot) error {
	return normalize(snap, nil)
}

func normalize(snap *cluster.Snapshot, families map[string][]corev1.IPFamily) error {
	var problems []string
	addNamespaces(snap)
	problems = append(problems, placePods(snap)...)
	problems = append(problems, addressNodes(snap)...)
	problems = append(problems, addressPods(snap, families)...)
	if len(problems) > 0 {
		return &InvalidError{Problems: problems}
	}
	return nil
}

func addNamespaces(snap *cluster.Snapshot) {
	have := map[string]bool{}
	for _, ns := range snap.Namespaces {
		have[ns.Name] = true
		if ns.Labels[corev1.LabelMetadataName] != ns.Name {
			l := make(labels.Set, len(ns.Labels)+1)
			for k, v := range ns.Labels {
				l[k] = v
			}
			l[corev1.LabelMetadataName] = ns.Name
			ns.Labels = l
		}
	}
	add := func(name string) {
		if name != "" && !have[name] {
			have[name] = true
			snap.Namespaces = append(snap.Namespaces, &cluster.Namespace{
				Name: name, Labels: labels.Set{corev1.LabelMetadataName: name},
			})
		}
	}
	for _, p := range snap.Pods {
		if p.Namespace == "" {
			p.Namespace = corev1.NamespaceDefault
		}
		add(p.Namespace)
	}
	for _, np := range snap.Policies {
		if np.Namespace == "" {
			np.Namespace = corev1.NamespaceDefault
		}
		add(np.Namespace)
	}
}

func placePods(snap *cluster.Snapshot) []string {
	if len(snap.Nodes) == 0 {
		snap.Nodes = []*cluster.Node{{Name: DefaultNode}}
		for _, p := range snap.Pods {
			p.NodeName = DefaultNode
		}
		return nil
	}
	var problems []string
	for _, p := range snap.Pods {
		switch {
		case p.NodeName == "" && len(snap.Nodes) == 1:
			p.NodeName = snap.Nodes[0].Name
		case p.NodeName == "":
			problems = append(problems, fmt.Sprintf("pod %s: spec.nodeName: Required value: the lab has %d nodes: name the one hosting the pod", p.Key(), len(snap.Nodes)))
		case nodeIndex(snap, p.NodeName) < 0:
			problems = append(problems, fmt.Sprintf("pod %s: spec.nodeName: Not found: %q", p.Key(), p.NodeName))
		}
	}
	return problems
}

func nodeIndex(snap *cluster.Snapshot, name string) int {
	return slices.IndexFunc(snap.Nodes, func(n *cluster.Node) bool { return n.Name == name })
}

func addressNodes(snap *cluster.Snapshot) []string {
	var problems []string
	for i, n := range snap.Nodes {
		if len(n.PodCIDRs) == 0 {
			n.PodCIDRs = DefaultPodCIDRs(i)
		}
		for _, c := range n.PodCIDRs {
			for _, f := range []netip.Prefix{fabricV4, fabricV6} {
				if c.Overlaps(f) {
					problems = append(problems, fmt.Sprintf("node %s: spec.podCIDRs: %s overlaps the lab's node fabric %s", n.Name, c, f))
				}
			}
		}
		n.Addresses = nil
		if len(snap.Nodes) > 1 {
			for _, a := range FabricAddrs(i) {
				n.Addresses = append(n.Addresses, a.Addr())
			}
		}
		n.Addresses = append(n.Addresses, Gateways(n.PodCIDRs)...)
	}
	return problems
}

// PrimaryAddrs returns the addresses a node is known by (a hostNetwork pod's
// addresses): its fabric addresses when there are several nodes, otherwise
// its gateways.
func PrimaryAddrs(snap *cluster.Snapshot, node string) []netip.Addr {
	i := nodeIndex(snap, node)
	if i < 0 {
		return nil
	}
	if len(snap.Nodes) > 1 {
		var out []netip.Addr
		for _, a := range FabricAddrs(i) {
			out = append(out, a.Addr())
		}
		return out
	}
	return Gateways(snap.Nodes[i].PodCIDRs)
}

func addressPods(snap *cluster.Snapshot, families map[string][]corev1.IPFamily) []string {
	var problems []string
	used := map[netip.Addr]string{}
	for _, n := range snap.Nodes {
		for _, a := range n.Addresses {
			used[a] = "node " + n.Name
		}
	}
	for _, p := range snap.Pods {
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			if other, ok := used[ip]; ok {
				problems = append(problems, fmt.Sprintf("pod %s: status.podIPs: %s is already the address of %s", p.Key(), ip, other))
			}
			used[ip] = "pod " + p.Key()
		}
	}
	for _, p := range snap.Pods {
		if p.Phase == "" {
			p.Phase = corev1.PodRunning
		}
		switch {
		case p.HostNetwork:
			p.IPs = PrimaryAddrs(snap, p.NodeName)
		case len(p.IPs) > 0 || p.Phase != corev1.PodRunning:
		default:
			i := nodeIndex(snap, p.NodeName)
			if i < 0 {
				continue // reported by placePods
			}
			for _, c := range snap.Nodes[i].PodCIDRs {
				if want := families[p.Key()]; want != nil && !slices.Contains(want, FamilyOf(c.Addr())) {
					continue
				}
				ip, ok := nextFree(c, used)
				if !ok {
					problems = append(problems, fmt.Sprintf("pod %s: node %s has no free address left in %s", p.Key(), p.NodeName, c))
					continue
				}
				used[ip] = "pod " + p.Key()
				p.IPs = append(p.IPs, ip)
			}
		}
	}
	return problems
}

// nextFree returns the lowest address of c after its gateway that nobody
// uses, leaving out the IPv4 broadcast address.
func nextFree(c netip.Prefix, used map[netip.Addr]string) (netip.Addr, bool) {
	for a := c.Masked().Addr().Next().Next(); c.Contains(a); a = a.Next() {
		if a.Is4() && !c.Contains(a.Next()) {
			break // broadcast
		}
		if _, taken := used[a]; !taken {
			return a, true
		}
	}
	return netip.Addr{}, false
}
