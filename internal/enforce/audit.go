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
// policy is in audit mode, so without them nothing is compiled twice. It
// keeps only the policies in audit mode: everything else it starts from is
// what the enforcing compiler holds.
type audit struct {
	node string
	opts policy.Options

	policies map[string]*networkingv1.NetworkPolicy   // in audit mode, by namespace/name
	cnps     map[string]*cluster.ClusterNetworkPolicy // in audit mode, enforced copies, by name

	compiler *policy.Compiler // nil while no policy is in audit mode
}

func newAudit(node string, opts policy.Options) *audit {
	return &audit{node: node, opts: opts,
		policies: map[string]*networkingv1.NetworkPolicy{}, cnps: map[string]*cluster.ClusterNetworkPolicy{}}
}

func (a *audit) setPolicy(key string, np *networkingv1.NetworkPolicy) {
	if policy.IsAudit(np) {
		a.policies[key] = np
	} else {
		delete(a.policies, key)
	}
	if a.compiler != nil {
		a.compiler.SetPolicy(np)
	}
}

func (a *audit) deletePolicy(key string) {
	delete(a.policies, key)
	if a.compiler != nil {
		a.compiler.DeletePolicy(key)
	}
}

// setClusterNetworkPolicy hands c over as the audit plan enforces it: a
// policy in audit mode as an enforced one.
func (a *audit) setClusterNetworkPolicy(c *cluster.ClusterNetworkPolicy) {
	if c.Audit {
		e := *c
		e.Audit = false
		c = &e
		a.cnps[c.Name] = c
	} else {
		delete(a.cnps, c.Name)
	}
	if a.compiler != nil {
		a.compiler.SetClusterNetworkPolicy(c)
	}
}

func (a *audit) deleteClusterNetworkPolicy(name string) {
	delete(a.cnps, name)
	if a.compiler != nil {
		a.compiler.DeleteClusterNetworkPolicy(name)
	}
}

// plan returns the plan with the policies in audit mode enforced, or nil
// when no policy is in audit mode. A new audit compiler starts from what
// base, the enforcing compiler, holds.
func (a *audit) plan(base *policy.Compiler) *plan.Plan {
	if len(a.policies) == 0 && len(a.cnps) == 0 {
		a.compiler = nil
		return nil
	}
	if a.compiler == nil {
		a.compiler = policy.NewCompiler(a.node, a.opts)
		a.compiler.Load(base.Snapshot())
		for _, np := range a.policies {
			a.compiler.SetPolicy(np)
		}
		for _, c := range a.cnps {
			a.compiler.SetClusterNetworkPolicy(c)
		}
	}
	return a.compiler.Plan()
}
