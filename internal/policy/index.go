package policy

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kube-fence/kube-fence/internal/addrset"
	"github.com/kube-fence/kube-fence/internal/cluster"
)

// compiler holds the indexes and memos of one Compile call. Nothing in it
// outlives the call, which keeps Compile pure.
type compiler struct {
	snap *cluster.Snapshot
	// nsLabels are the labels of every namespace known from a Namespace
	// object or from a pod living in it.
	nsLabels map[string]labels.Set
	// podsByNS holds the enforceable pods, the only ones that can be peers.
	podsByNS map[string][]*cluster.Pod
	problems []Problem

	// Memos: the same selector or named port used by many policies is
	// resolved once per compile.
	selectors    map[string]converted
	peers        map[string]*peer
	nsSelections map[string][]string
	serving      map[portName][]servingAddr           // built on first use
	byLabel      map[string]map[string][]*cluster.Pod // label key -> value -> pods
	namedTargets map[namedKey]map[uint16]setID
	sets         *setStore
	compiled     []*compiledPolicy
	all          setID
}

func newCompiler(s *cluster.Snapshot) *compiler {
	c := &compiler{
		snap:         s,
		nsLabels:     map[string]labels.Set{},
		podsByNS:     map[string][]*cluster.Pod{},
		peers:        map[string]*peer{},
		nsSelections: map[string][]string{},
		byLabel:      map[string]map[string][]*cluster.Pod{},
		selectors:    map[string]converted{},
		serving:      map[portName][]servingAddr{},
		namedTargets: map[namedKey]map[uint16]setID{},
		sets:         newSetStore(),
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
	}
	return c
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
		c.all = c.sets.intern(spansOf(addrset.All()))
	}
	return c.all
}

func (c *compiler) problem(policy string, path *field.Path, msg string) {
	c.problems = append(c.problems, Problem{Policy: policy, Field: path.String(), Message: msg})
}

// portName is a named port as a policy uses it: the name and the protocol
// the policy port gives (TCP by default).
type portName struct {
	name  string
	proto Protocol
}

// servingAddr is an address of an enforceable pod serving a named port on
// one number.
type servingAddr struct {
	key  u128
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
								lists[j] = append(lists[j], servingAddr{keyOf(ip), ip.Is4(), num})
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
				if wide && ps.name != "" && !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
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
