package policy

import (
	"github.com/kube-fence/kube-fence/internal/plan"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// compiledPolicy is one NetworkPolicy reduced to what profiles are built
// from. Each policy that matters to the node is compiled once, however many
// profiles use it. Its peers are shared and kept up to date by a Compiler,
// so a compiled policy stays valid until the object itself changes.
type compiledPolicy struct {
	key                             string // namespace/name
	object                          *networkingv1.NetworkPolicy
	isolatesIngress, isolatesEgress bool
	ingress, egress                 []*compiledRule
	problems                        []plan.Problem // the parts that could not be compiled
}

// compiledRule is one ingress or egress rule. A rule allows traffic when the
// peer matches one of peers (or allPeers) and the port one of ports (or
// allPorts).
type compiledRule struct {
	// dead marks a rule whose peer or port list had entries but none that
	// could be compiled. It allows nothing: reading an empty list as
	// "everything" would open what the author meant to restrict.
	dead     bool
	allPeers bool
	peers    []*peer
	peerSet  setID  // union of the peers' addresses, or every address
	parts    []part // what peerSet is the union of
	allPorts bool
	ports    []portSpec
}

// portSpec is a compiled NetworkPolicyPort: a numeric range, or a name
// resolved later against the destination pod.
type portSpec struct {
	proto       plan.Protocol
	first, last uint16
	name        string
}

func (c *compiler) compilePolicy(key string, np *networkingv1.NetworkPolicy) *compiledPolicy {
	cp := &compiledPolicy{key: key, object: np}
	c.compiled = append(c.compiled, cp)
	outer := c.problems
	c.problems = nil
	defer func() { cp.problems, c.problems = c.problems, outer }()
	cp.isolatesIngress, cp.isolatesEgress = c.policyTypes(key, np)
	spec := field.NewPath("spec")
	ns := policyNamespace(np)
	if cp.isolatesIngress {
		for i, r := range np.Spec.Ingress {
			path := spec.Child("ingress").Index(i)
			cp.ingress = append(cp.ingress, c.compileRule(key, ns, path, path.Child("from"), r.From, r.Ports))
		}
	}
	if cp.isolatesEgress {
		for i, r := range np.Spec.Egress {
			path := spec.Child("egress").Index(i)
			cp.egress = append(cp.egress, c.compileRule(key, ns, path, path.Child("to"), r.To, r.Ports))
		}
	}
	return cp
}

// policyTypes applies the API's defaulting: Ingress always, Egress when the
// policy has egress rules. Unknown values are reported and ignored; a list
// with no valid value is defaulted as if it were empty.
func (c *compiler) policyTypes(key string, np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	valid := false
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress, valid = true, true
		case networkingv1.PolicyTypeEgress:
			egress, valid = true, true
		default:
			c.problem(key, field.NewPath("spec", "policyTypes").Index(i),
				`unsupported value "`+string(t)+`", expected "Ingress" or "Egress"; ignored`)
		}
	}
	if !valid {
		return true, len(np.Spec.Egress) > 0
	}
	return ingress, egress
}

func (c *compiler) compileRule(key, ns string, path, peersPath *field.Path,
	peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) *compiledRule {
	r := &compiledRule{allPeers: len(peers) == 0, allPorts: len(ports) == 0}
	for i := range ports {
		if ps, ok := c.compilePort(key, path.Child("ports").Index(i), &ports[i]); ok {
			r.ports = append(r.ports, ps)
		}
	}
	var sets []setID
	for i := range peers {
		if p, ok := c.compilePeer(key, ns, peersPath.Index(i), &peers[i]); ok {
			r.peers = append(r.peers, p)
			sets = append(sets, p.id)
			r.parts = append(r.parts, part{p.key, p.id})
		}
	}
	r.dead = (!r.allPorts && len(r.ports) == 0) || (!r.allPeers && len(r.peers) == 0)
	if r.allPeers {
		r.peerSet = c.allAddrs()
		r.parts = []part{{allKey, r.peerSet}}
	} else {
		r.peerSet = c.sets.union(sets)
	}
	return r
}

// compilePort checks one NetworkPolicyPort as the API server would and
// returns what it allows. An entry that fails is reported and dropped.
func (c *compiler) compilePort(key string, path *field.Path, p *networkingv1.NetworkPolicyPort) (portSpec, bool) {
	ps := portSpec{proto: plan.TCP}
	if p.Protocol != nil {
		// An explicit empty protocol is not the default: the API server
		// defaults a missing protocol and refuses an empty one.
		proto, ok := ProtocolFromAPI(*p.Protocol)
		if !ok || *p.Protocol == "" {
			c.problem(key, path.Child("protocol"), `unsupported protocol "`+string(*p.Protocol)+`", expected TCP, UDP or SCTP; port entry ignored`)
			return ps, false
		}
		ps.proto = proto
	}
	fail := func(child, msg string) (portSpec, bool) {
		c.problem(key, path.Child(child), msg+"; port entry ignored")
		return ps, false
	}
	switch {
	case p.Port == nil:
		if p.EndPort != nil {
			return fail("endPort", "may not be specified when port is not")
		}
		ps.first, ps.last = 0, 65535
	case p.Port.Type == intstr.String:
		if p.EndPort != nil {
			return fail("endPort", "may not be specified when port is a name")
		}
		if msgs := validation.IsValidPortName(p.Port.StrVal); len(msgs) > 0 {
			return fail("port", `invalid port name "`+p.Port.StrVal+`": `+msgs[0])
		}
		ps.name = p.Port.StrVal
	case p.Port.Type == intstr.Int:
		port := p.Port.IntVal
		if port < 1 || port > 65535 {
			return fail("port", "must be between 1 and 65535")
		}
		ps.first, ps.last = uint16(port), uint16(port)
		if p.EndPort != nil {
			end := *p.EndPort
			if end < 1 || end > 65535 {
				return fail("endPort", "must be between 1 and 65535")
			}
			if end < port {
				return fail("endPort", "must be greater than or equal to port")
			}
			ps.last = uint16(end)
		}
	default:
		return fail("port", "neither a number nor a name")
	}
	return ps, true
}
