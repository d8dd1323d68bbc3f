package synth

import (
	"fmt"
	"math/rand/v2"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// Setter receives object changes: policy.Compiler and enforce.Pipeline.
type Setter interface {
	SetPod(*cluster.Pod)
	SetNamespace(*cluster.Namespace)
	SetPolicy(*networkingv1.NetworkPolicy)
}

// RandomChange makes one random change to the cluster s, drawing new objects
// and labels from pool (another Generate): a pod added (every third step on
// node), a pod relabelled, a namespace relabelled or a policy added. It
// hands the change to c and says what it was.
func RandomChange(rnd *rand.Rand, s, pool *cluster.Snapshot, node string, step int, c Setter) string {
	switch rnd.IntN(4) {
	case 0:
		p := *pool.Pods[rnd.IntN(len(pool.Pods))]
		p.Name = fmt.Sprintf("added-%d", step)
		if step%3 == 0 {
			p.NodeName = node
		}
		c.SetPod(&p)
		return "add pod"
	case 1:
		p := *s.Pods[rnd.IntN(len(s.Pods))]
		p.Labels = pool.Pods[rnd.IntN(len(pool.Pods))].Labels
		c.SetPod(&p)
		return "relabel pod"
	case 2:
		c.SetNamespace(&cluster.Namespace{Name: fmt.Sprintf("ns-%d", rnd.IntN(20)),
			Labels: labels.Set{"team": fmt.Sprintf("team-%d", rnd.IntN(7)), "env": "prod"}})
		return "relabel namespace"
	}
	np := pool.Policies[rnd.IntN(len(pool.Policies))].DeepCopy()
	np.Name = fmt.Sprintf("added-%d", step)
	c.SetPolicy(np)
	return "add policy"
}
