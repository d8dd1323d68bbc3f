package policy

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// compiler holds the indexes and memos of a compile. Compile uses one for a
// single call and drops it, which keeps Compile pure; a Compiler keeps one
// and updates it as objects change (update.go), which keeps every memo
// valid across calls.
type compiler struct {
	node string
	// nsLabels are the labels of every namespace known from a Namespace
	// object or from a pod living in it.
	nsLabels map[string]labels.Set
	// podsByNS holds the enforceable pods, the only ones that can be peers.
	podsByNS map[string][]*cluster.Pod
	// addrPods are the enforceable pods by address: usually one each.
	addrPods map[point][]*cluster.Pod
	// locals are the enforceable pods of the node, by namespace/name; the
	// first pod of a key wins.
	locals   map[string]*cluster.Pod
	policies []*networkingv1.NetworkPolicy // sorted by namespace and name
	// cnps are the ClusterNetworkPolicies, sorted by priority and name.
	cnps        []*cluster.ClusterNetworkPolicy
	byCNP       map[string]*compiledCNP
	cnpPriority int32           // of the policy being compiled
	nodeObjs    []*cluster.Node // for nodes peers
	problems    []plan.Problem

	nodeAddrs, podCIDRs addrset.Set

	// Memos: the same selector or named port used by many policies is
	// resolved once.
	selectors    map[string]converted
	peers        map[string]*peer
	nsPeers      []*peer            // selector peers with a namespaceSelector
	peersByNS    map[string][]*peer // the others, by the namespace they select in
	nsSelections map[string]*nsSelection
	serving      map[portName][]servingAddr           // built on first use
	byLabel      map[string]map[string][]*cluster.Pod // label key -> value -> pods
	named        map[namedKey]*namedMap
	namedByName  map[string][]*namedMap
	leaves       map[setID]leafDef // the sets update may change
	sets         *setStore
	compiled     []*compiledPolicy // compiled since indexEgressNames last ran
	byPolicy     map[string]*compiledPolicy
	profiles     map[string]*cachedProfile
	all          setID
	deps         *cachedProfile // the profile being built, collecting what it reads
	version      uint64         // bumped whenever a named map gains a number
}

func newCompiler(s *cluster.Snapshot, node string) *compiler {
	c := &compiler{
		node:         node,
		nsLabels:     map[string]labels.Set{},
		podsByNS:     map[string][]*cluster.Pod{},
		addrPods:     map[point][]*cluster.Pod{},
		locals:       map[string]*cluster.Pod{},
		peers:        map[string]*peer{},
		peersByNS:    map[string][]*peer{},
		nsSelections: map[string]*nsSelection{},
		byLabel:      map[string]map[string][]*cluster.Pod{},
		selectors:    map[string]converted{},
		serving:      map[portName][]servingAddr{},
		named:        map[namedKey]*namedMap{},
		namedByName:  map[string][]*namedMap{},
		leaves:       map[setID]leafDef{},
		sets:         newSetStore(),
		byPolicy:     map[string]*compiledPolicy{},
		byCNP:        map[string]*compiledCNP{},
		profiles:     map[string]*cachedProfile{},
	}
	for _, ns := range s.Namespaces {
		if ns == nil {
			continue
		}
		if _, dup := c.nsLabels[ns.Name]; !dup { // the first object of a name wins, as in Allowed
			c.nsLabels[ns.Name] = namespaceLabels(ns.Name, ns.Labels)
		}
	}
	for _, p := range s.Pods {
		if p == nil || !p.Enforceable() {
			continue
		}
		ns := podNamespace(p)
		if _, ok := c.nsLabels[ns]; !ok {
			c.nsLabels[ns] = namespaceLabels(ns, nil)
		}
		c.podsByNS[ns] = append(c.podsByNS[ns], p)
		c.indexAddrs(p)
		if key := ns + "/" + p.Name; p.NodeName == node && c.locals[key] == nil {
			c.locals[key] = p
		}
	}
	for _, np := range s.Policies {
		if np != nil {
			c.policies = append(c.policies, np)
		}
	}
	sortPolicies(c.policies)
	for _, p := range s.ClusterNetworkPolicies {
		if p != nil {
			c.cnps = append(c.cnps, p)
		}
	}
	sortCNPs(c.cnps)
	c.nodeObjs = s.Nodes
	c.nodeAddrs, c.podCIDRs = nodeSets(s.Nodes, node)
	return c
}

func sortPolicies(ps []*networkingv1.NetworkPolicy) { slices.SortStableFunc(ps, comparePolicies) }

func comparePolicies(a, b *networkingv1.NetworkPolicy) int {
	return cmp.Or(cmp.Compare(policyNamespace(a), policyNamespace(b)), cmp.Compare(a.Name, b.Name))
}

// indexAddrs adds an enforceable pod's valid addresses to addrPods.
func (c *compiler) indexAddrs(p *cluster.Pod) {
	for _, ip := range p.IPs {
		if ip.IsValid() {
			k := pointOf(ip)
			c.addrPods[k] = append(c.addrPods[k], p)
		}
	}
}

// namespaceLabels returns the labels selectors see on a namespace. The API
// server always sets kubernetes.io/metadata.name to the name and refuses any
// other value, so it is forced here for objects that did not pass through one,
// and is all a namespace known only from its pods has.
func namespaceLabels(name string, l labels.Set) labels.Set {
	if v, ok := l[corev1.LabelMetadataName]; ok && v == name {
		return l
	}
	out := make(labels.Set, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[corev1.LabelMetadataName] = name
	return out
}

// podNamespace and policyNamespace default an empty namespace as the API
// server would for an object created without one.
func podNamespace(p *cluster.Pod) string {
	if p.Namespace == "" {
		return corev1.NamespaceDefault
	}
	return p.Namespace
}

func policyNamespace(np *networkingv1.NetworkPolicy) string {
	if np.Namespace == "" {
		return corev1.NamespaceDefault
	}
	return np.Namespace
}

// allAddrs is the set of every address, for rules without peers.
func (c *compiler) allAddrs() setID {
	if c.all == emptySet {
		c.all = c.sets.intern(addrset.SpansOf(addrset.All()))
	}
	return c.all
}

func (c *compiler) problem(policy string, path *field.Path, msg string) {
	c.problems = append(c.problems, plan.Problem{Policy: policy, Field: path.String(), Message: msg})
}

// portName is a named port as a policy uses it: the name and the protocol
// the policy port gives (TCP by default).
type portName struct {
	name  string
	proto plan.Protocol
}

// servingAddr is an address of an enforceable pod serving a named port on
// one number.
type servingAddr struct {
	key  addrset.Key
	v4   bool
	port uint16
}

// servingAddrs returns the addresses of the enforceable pods that declare a
// container port with this name and protocol.
func (c *compiler) servingAddrs(n portName) []servingAddr {
	if _, ok := c.serving[n]; !ok {
		c.indexServing([]portName{n})
	}
	return c.serving[n]
}

// indexServing lists the addresses serving the given named ports in two
// passes over the pods, counting then filling: the lists can hold every
// address of the cluster, and growing them by doubling cost more than the
// scans.
func (c *compiler) indexServing(names []portName) {
	wanted := make(map[string][]int, len(names))
	for i, n := range names {
		wanted[n.name] = append(wanted[n.name], i)
	}
	lists := make([][]servingAddr, len(names))
	for pass := range 2 {
		counts := make([]int, len(names))
		for _, pods := range c.podsByNS {
			for _, p := range pods {
				for i, cp := range p.Ports {
					idx, ok := wanted[cp.Name]
					if !ok {
						continue
					}
					m, num, ok := namedContainerPort(cp)
					if !ok || declaredBefore(p.Ports[:i], m, num) {
						continue
					}
					for _, j := range idx {
						if names[j] != m {
							continue
						}
						if pass == 0 {
							counts[j] += len(p.IPs)
							continue
						}
						for _, ip := range p.IPs {
							if ip.IsValid() {
								lists[j] = append(lists[j], servingAddr{addrset.KeyOf(ip), ip.Is4(), num})
							}
						}
					}
				}
			}
		}
		if pass == 0 {
			for j := range lists {
				lists[j] = make([]servingAddr, 0, counts[j])
			}
		}
	}
	for j, n := range names {
		c.serving[n] = lists[j]
	}
}

// indexEgressNames indexes at once the named ports that egress rules of the
// compiled policies resolve against pods outside any selector (no peers, or
// an ipBlock), which is all that needs a scan of the whole cluster.
func (c *compiler) indexEgressNames() {
	var names []portName
	for _, cp := range c.compiled {
		for _, r := range cp.egress {
			wide := r.allPeers
			for _, p := range r.peers {
				wide = wide || p.block
			}
			for _, ps := range r.ports {
				n := portName{ps.name, ps.proto}
				if _, done := c.serving[n]; wide && ps.name != "" && !done && !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	c.compiled = c.compiled[:0]
	if len(names) > 0 {
		c.indexServing(names)
	}
}

type declaredName struct {
	portName
	port uint16
}

// declaredNames lists the named container ports of a pod, without
// duplicates. A name may map to several numbers when several containers use
// it; a named port then means all of them.
func declaredNames(p *cluster.Pod) []declaredName {
	var out []declaredName
	for i, cp := range p.Ports {
		if n, num, ok := namedContainerPort(cp); ok && !declaredBefore(p.Ports[:i], n, num) {
			out = append(out, declaredName{n, num})
		}
	}
	return out
}

// namedContainerPort reads a container port that a named port can match.
func namedContainerPort(cp cluster.ContainerPort) (portName, uint16, bool) {
	if cp.Name == "" || cp.Port < 1 || cp.Port > 65535 {
		return portName{}, 0, false
	}
	proto, ok := ProtocolFromAPI(cp.Protocol)
	return portName{cp.Name, proto}, uint16(cp.Port), ok
}

func declaredBefore(earlier []cluster.ContainerPort, n portName, num uint16) bool {
	for _, cp := range earlier {
		if m, k, ok := namedContainerPort(cp); ok && m == n && k == num {
			return true
		}
	}
	return false
}
