package enforce

import (
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// audit is what audit mode needs beside the enforcing compiler: a second
// compiler that treats the policies in audit mode as enforced, whose plan
// says which allowed connections they would deny. It exists only while some
// policy is in audit mode, so without them nothing is compiled twice; to
// start it at any moment the pipeline keeps the objects it was handed (the
// compilers keep them too; these are pointers).
type audit struct {
	node string
	opts policy.Options

	pods       map[string]*cluster.Pod
	namespaces map[string]*cluster.Namespace
	policies   map[string]*networkingv1.NetworkPolicy
	nodes      map[string]*cluster.Node
	cnps       map[string]*cluster.ClusterNetworkPolicy
	inAudit    map[string]bool // keys of the NetworkPolicies in audit mode
	cnpAudit   map[string]bool // names of the ClusterNetworkPolicies in audit mode

	compiler *policy.Compiler // nil while no policy is in audit mode
}

func newAudit(node string, opts policy.Options) *audit {
	return &audit{
		node: node, opts: opts,
		pods: map[string]*cluster.Pod{}, namespaces: map[string]*cluster.Namespace{},
		policies: map[string]*networkingv1.NetworkPolicy{}, nodes: map[string]*cluster.Node{},
		cnps: map[string]*cluster.ClusterNetworkPolicy{}, inAudit: map[string]bool{}, cnpAudit: map[string]bool{},
	}
}

func (a *audit) setPod(key string, p *cluster.Pod) {
	a.pods[key] = p
	if a.compiler != nil {
		a.compiler.SetPod(p)
	}
}

func (a *audit) deletePod(key string) {
	delete(a.pods, key)
	if a.compiler != nil {
		a.compiler.DeletePod(key)
	}
}

func (a *audit) setNamespace(ns *cluster.Namespace) {
	a.namespaces[ns.Name] = ns
	if a.compiler != nil {
		a.compiler.SetNamespace(ns)
	}
}

func (a *audit) deleteNamespace(name string) {
	delete(a.namespaces, name)
	if a.compiler != nil {
		a.compiler.DeleteNamespace(name)
	}
}

func (a *audit) setPolicy(key string, np *networkingv1.NetworkPolicy) {
	a.policies[key] = np
	if policy.IsAudit(np) {
		a.inAudit[key] = true
	} else {
		delete(a.inAudit, key)
	}
	if a.compiler != nil {
		a.compiler.SetPolicy(np)
	}
}

func (a *audit) deletePolicy(key string) {
	delete(a.policies, key)
	delete(a.inAudit, key)
	if a.compiler != nil {
		a.compiler.DeletePolicy(key)
	}
}

func (a *audit) setNode(n *cluster.Node) {
	a.nodes[n.Name] = n
	if a.compiler != nil {
		a.compiler.SetNode(n)
	}
}

func (a *audit) deleteNode(name string) {
	delete(a.nodes, name)
	if a.compiler != nil {
		a.compiler.DeleteNode(name)
	}
}

// setClusterNetworkPolicy keeps c as the audit plan enforces it: a policy
// in audit mode is handed over as an enforced one.
func (a *audit) setClusterNetworkPolicy(c *cluster.ClusterNetworkPolicy) {
	if c.Audit {
		e := *c
		e.Audit = false
		c = &e
		a.cnpAudit[c.Name] = true
	} else {
		delete(a.cnpAudit, c.Name)
	}
	a.cnps[c.Name] = c
	if a.compiler != nil {
		a.compiler.SetClusterNetworkPolicy(c)
	}
}

func (a *audit) deleteClusterNetworkPolicy(name string) {
	delete(a.cnps, name)
	delete(a.cnpAudit, name)
	if a.compiler != nil {
		a.compiler.DeleteClusterNetworkPolicy(name)
	}
}

// plan returns the plan with the policies in audit mode enforced, or nil
// when no policy is in audit mode.
func (a *audit) plan() *plan.Plan {
	if len(a.inAudit) == 0 && len(a.cnpAudit) == 0 {
		a.compiler = nil
		return nil
	}
	if a.compiler == nil {
		a.compiler = policy.NewCompiler(a.node, a.opts)
		for _, ns := range a.namespaces {
			a.compiler.SetNamespace(ns)
		}
		for _, p := range a.pods {
			a.compiler.SetPod(p)
		}
		for _, np := range a.policies {
			a.compiler.SetPolicy(np)
		}
		for _, n := range a.nodes {
			a.compiler.SetNode(n)
		}
		for _, c := range a.cnps {
			a.compiler.SetClusterNetworkPolicy(c)
		}
	}
	return a.compiler.Plan()
}
