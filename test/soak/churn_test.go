package soak

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// The cluster: namespaces a, b, c with pods p0..p3 each, all on one node,
// each pod with a role label; every pod serves TCP 80 and UDP 81.
var (
	namespaces = []string{"a", "b", "c"}
	roles      = []string{"web", "db", "cache"}
	podPorts   = []corev1.ContainerPort{
		{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
		{Name: "dns", ContainerPort: 81, Protocol: corev1.ProtocolUDP},
	}
	policyNames = []string{"p0", "p1", "p2"} // per namespace
)

const (
	nodeName  = "node-1"
	podsPerNS = 4
	minPods   = 8 // deletions stop below this many pods
)

type podSpec struct {
	ns, name string
	index    int
}

func (p podSpec) key() string { return p.ns + "/" + p.name }

func (p podSpec) ips() []string {
	return []string{fmt.Sprintf("10.42.0.%d", 10+p.index), fmt.Sprintf("fd00:10:42::%x", 10+p.index)}
}

func allPods() []podSpec {
	var out []podSpec
	for i, ns := range namespaces {
		for j := range podsPerNS {
			out = append(out, podSpec{ns, fmt.Sprintf("p%d", j), i*podsPerNS + j})
		}
	}
	return out
}

// churn makes the changes through the API server and records each state it
// acknowledged. Objects it stores are never modified afterwards.
type churn struct {
	api   kubernetes.Interface
	rnd   *rand.Rand
	h     *history
	node  *cluster.Node
	nss   []*cluster.Namespace
	pods  map[string]*cluster.Pod // running, as the API server returned them
	exist map[string]bool         // the Pod object exists (running or not yet)
	pols  map[string]*networkingv1.NetworkPolicy
	specs map[string]podSpec

	writes, failed int
	dirty          bool      // a write failed: the model may differ from the API server
	dirtySince     time.Time // when the first such write began
}

// resync rebuilds the pods and policies from the API server after a failed
// write and records the state it finds, counted from the failed write's
// start (the write may have taken effect any time since). While the API
// server cannot be read, the model stays dirty and step tries again.
func (c *churn) resync(ctx context.Context) {
	if !c.dirty {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := c.api.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	pols, err := c.api.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	c.pods, c.exist, c.pols = map[string]*cluster.Pod{}, map[string]bool{}, map[string]*networkingv1.NetworkPolicy{}
	for i := range pods.Items {
		p := &pods.Items[i]
		c.exist[p.Namespace+"/"+p.Name] = true
		if err := c.storePod(p); err != nil {
			delete(c.pods, p.Namespace+"/"+p.Name)
		}
	}
	for i := range pols.Items {
		np := &pols.Items[i]
		c.pols[np.Namespace+"/"+np.Name] = np
	}
	c.dirty = false
	c.h.add(newState("read back after a failed write", c.dirtySince, time.Now(), snapshotOf(c.node, c.nss, c.pods, c.pols)))
}

// write makes one API write and records the state after it.
func (c *churn) write(ctx context.Context, what string, do func(ctx context.Context) error) error {
	start := time.Now()
	c.h.begin(start)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := do(ctx); err != nil {
		if ctx.Err() == nil {
			c.failed++
		}
		// A failed write may still have happened (a timeout after etcd
		// took it): read back what the API server holds before going on.
		c.dirty, c.dirtySince = true, start
		c.resync(ctx)
		return fmt.Errorf("%s: %w", what, err)
	}
	c.writes++
	c.h.add(newState(what, start, time.Now(), snapshotOf(c.node, c.nss, c.pods, c.pols)))
	return nil
}

// step makes one random change (two writes for a pod that comes back).
func (c *churn) step(ctx context.Context) error {
	if c.resync(ctx); c.dirty {
		return errors.New("the API server cannot be read after a failed write")
	}
	switch n := c.rnd.IntN(100); {
	case n < 30:
		return c.relabel(ctx)
	case n < 65:
		return c.setPolicy(ctx)
	case n < 80:
		return c.deletePolicy(ctx)
	default:
		return c.podChurn(ctx)
	}
}

func (c *churn) pick(keys []string) string { return keys[c.rnd.IntN(len(keys))] }

func (c *churn) running() []string {
	var out []string
	for k := range c.pods {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (c *churn) relabel(ctx context.Context) error {
	if len(c.pods) == 0 {
		return nil
	}
	key := c.pick(c.running())
	s := c.specs[key]
	patch := fmt.Sprintf(`{"metadata":{"labels":{"role":%q}}}`, c.pick(roles))
	return c.write(ctx, "relabel "+key, func(ctx context.Context) error {
		got, err := c.api.CoreV1().Pods(s.ns).Patch(ctx, s.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			return err
		}
		return c.storePod(got)
	})
}

func (c *churn) storePod(p *corev1.Pod) error {
	cp, err := cluster.PodFromAPI(p)
	if err != nil {
		return err
	}
	if cp.Enforceable() {
		c.pods[cp.Key()] = cp
	} else {
		delete(c.pods, cp.Key())
	}
	return nil
}

func (c *churn) podChurn(ctx context.Context) error {
	var gone []string
	for k := range c.specs {
		if !c.exist[k] {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	if len(gone) > 0 && (len(c.exist) <= minPods || c.rnd.IntN(2) == 0) {
		return c.createPod(ctx, c.specs[c.pick(gone)])
	}
	key := c.pick(c.running())
	s := c.specs[key]
	return c.write(ctx, "delete pod "+key, func(ctx context.Context) error {
		err := c.api.CoreV1().Pods(s.ns).Delete(ctx, s.name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		if err != nil {
			return err
		}
		delete(c.pods, key)
		delete(c.exist, key)
		return nil
	})
}

// createPod plays the kubelet: the pod, then its status with the lab's
// addresses, two writes.
func (c *churn) createPod(ctx context.Context, s podSpec) error {
	err := c.write(ctx, "create pod "+s.key(), func(ctx context.Context) error {
		p := framework.Pod(s.ns, s.name, nodeName, map[string]string{"role": c.pick(roles)}, podPorts...)
		if _, err := c.api.CoreV1().Pods(s.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return err
		}
		c.exist[s.key()] = true
		return nil
	})
	if err != nil {
		return err
	}
	return c.write(ctx, "pod running "+s.key(), func(ctx context.Context) error {
		got, err := runPod(ctx, c.api, s)
		if err != nil {
			return err
		}
		return c.storePod(got)
	})
}

// runPod sets the pod Running with its lab addresses.
func runPod(ctx context.Context, api kubernetes.Interface, s podSpec) (*corev1.Pod, error) {
	p, err := api.CoreV1().Pods(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIPs = nil
	for _, ip := range s.ips() {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	p.Status.PodIP = s.ips()[0]
	p.Status.StartTime = &now
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	return api.CoreV1().Pods(s.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

func (c *churn) setPolicy(ctx context.Context) error {
	ns, name := c.pick(namespaces), c.pick(policyNames)
	key := ns + "/" + name
	np := c.randomPolicy(ns, name)
	old := c.pols[key]
	what := "create policy " + key
	if old != nil {
		what = "update policy " + key
	}
	return c.write(ctx, what, func(ctx context.Context) error {
		var got *networkingv1.NetworkPolicy
		var err error
		if old != nil {
			np.ResourceVersion = old.ResourceVersion
			got, err = c.api.NetworkingV1().NetworkPolicies(ns).Update(ctx, np, metav1.UpdateOptions{})
		} else {
			got, err = c.api.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{})
		}
		if err != nil {
			return err
		}
		c.pols[key] = got
		return nil
	})
}

func (c *churn) deletePolicy(ctx context.Context) error {
	if len(c.pols) == 0 {
		return c.setPolicy(ctx)
	}
	var keys []string
	for k := range c.pols {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	key := c.pick(keys)
	np := c.pols[key]
	return c.write(ctx, "delete policy "+key, func(ctx context.Context) error {
		if err := c.api.NetworkingV1().NetworkPolicies(np.Namespace).Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil {
			return err
		}
		delete(c.pols, key)
		return nil
	})
}

// randomPolicy selects pods by role (or all), isolates one or both
// directions, and allows a random mix of peers and ports, sometimes
// nothing at all.
func (c *churn) randomPolicy(ns, name string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if c.rnd.IntN(4) > 0 {
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"role": c.pick(roles)}}
	}
	switch c.rnd.IntN(3) {
	case 0:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	default:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	for _, t := range np.Spec.PolicyTypes {
		for range c.rnd.IntN(3) { // 0 rules: deny that direction
			peers, ports := c.randomPeers(), c.randomPorts()
			if t == networkingv1.PolicyTypeIngress {
				np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
			} else {
				np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
			}
		}
	}
	return np
}

func (c *churn) randomPeers() []networkingv1.NetworkPolicyPeer {
	role := &metav1.LabelSelector{MatchLabels: map[string]string{"role": c.pick(roles)}}
	nsSel := &metav1.LabelSelector{MatchLabels: map[string]string{"ns": c.pick(namespaces)}}
	switch c.rnd.IntN(5) {
	case 0:
		return nil // everyone
	case 1:
		return []networkingv1.NetworkPolicyPeer{{PodSelector: role}}
	case 2:
		return []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsSel}}
	case 3:
		return []networkingv1.NetworkPolicyPeer{{NamespaceSelector: nsSel, PodSelector: role}}
	default:
		s := c.specs[c.pick(slices.Sorted(maps.Keys(c.specs)))]
		return []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: s.ips()[0] + "/32"}}}
	}
}

func (c *churn) randomPorts() []networkingv1.NetworkPolicyPort {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	p80, p81, http := intstr.FromInt32(80), intstr.FromInt32(81), intstr.FromString("http")
	switch c.rnd.IntN(4) {
	case 0:
		return nil
	case 1:
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}}
	case 2:
		return []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &p81}}
	default:
		return []networkingv1.NetworkPolicyPort{{Port: &http}}
	}
}
