package agent

import (
	"strings"

	"github.com/kube-fence/kube-fence/internal/plan"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Event reasons, documented in docs/operations.md.
const (
	ReasonDegraded        = "KubeFenceDegraded"
	ReasonRecovered       = "KubeFenceRecovered"
	ReasonPolicyProblem   = "KubeFencePolicyProblem"
	eventComponent        = "kube-fence"
	maxEventMessageLength = 1000
)

// eventSink emits Kubernetes events: one on the Node when enforcement becomes
// degraded and one when it recovers (not one per retry), and one Warning per
// change of problems on the NetworkPolicy or ClusterNetworkPolicy that has
// them.
type eventSink struct {
	nodeName    string
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	reported    map[problemKey]string // problems already reported
}

func newEventSink(client kubernetes.Interface, node string) *eventSink {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &eventSink{
		nodeName:    node,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventComponent, Host: node}),
		reported:    map[problemKey]string{},
	}
}

func (e *eventSink) shutdown() { e.broadcaster.Shutdown() }

// node reports a transition of the node's enforcement state.
func (e *eventSink) node(st *store, degraded bool, reason string) {
	uid, _ := st.nodeRef(e.nodeName)
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: e.nodeName, UID: uid}
	if degraded {
		e.recorder.Event(ref, corev1.EventTypeWarning, ReasonDegraded, truncate("NetworkPolicy enforcement degraded, the last committed rules stay in force: "+reason))
		return
	}
	e.recorder.Event(ref, corev1.EventTypeNormal, ReasonRecovered, "NetworkPolicy enforcement recovered: the kernel holds the desired rules again")
}

// reportProblems emits a Warning on each NetworkPolicy and
// ClusterNetworkPolicy whose problems changed since the last report, and
// updates the policy gauges. It looks only at the policies with problems
// now or at the last report, not at every policy: it runs on every sync.
// A ClusterNetworkPolicy's problems are the compiler's and what validation
// refused (see cnpEntry), a field the compiler reported counted once.
func (a *agent) reportProblems(policies, clusterPolicies int, pl *plan.Plan) {
	byPolicy := map[problemKey][]string{}
	fields := map[problemKey]map[string]bool{}
	add := func(p plan.Problem) {
		k := problemKey{p.Kind, p.Policy}
		if fields[k] == nil {
			fields[k] = map[string]bool{}
		}
		fields[k][p.Field] = true
		byPolicy[k] = append(byPolicy[k], p.Field+": "+p.Message)
	}
	for _, p := range pl.Problems {
		add(p)
	}
	for _, p := range a.store.clusterPolicyProblems() {
		if !fields[problemKey{p.Kind, p.Policy}][p.Field] {
			add(p)
		}
	}
	rejected := map[string]int{}
	for k := range byPolicy {
		rejected[k.kind]++
	}
	a.metrics.setPolicies(plan.KindNetworkPolicy, policies, rejected[plan.KindNetworkPolicy])
	a.metrics.setPolicies(plan.KindClusterNetworkPolicy, clusterPolicies, rejected[plan.KindClusterNetworkPolicy])
	for key, msgs := range byPolicy {
		text := strings.Join(msgs, "; ")
		if text == a.events.reported[key] {
			continue
		}
		if !a.reportProblem(key, text) {
			continue // deleted since the sync took it; the next sync clears it
		}
		a.events.reported[key] = text
	}
	for key := range a.events.reported {
		if _, ok := byPolicy[key]; !ok {
			delete(a.events.reported, key) // fixed or deleted: a new problem is reported again
		}
	}
}

// problemKey names a policy with problems: plan.Problem's Kind and Policy.
type problemKey struct{ kind, policy string }

// reportProblem logs and emits the Warning for one policy, and reports
// whether the store still holds it.
func (a *agent) reportProblem(key problemKey, text string) bool {
	if key.kind == plan.KindClusterNetworkPolicy {
		uid, ok := a.store.clusterPolicy(key.policy)
		if !ok {
			return false
		}
		a.log.Warn("ClusterNetworkPolicy partly not enforced", "clusterNetworkPolicy", key.policy, "problems", text)
		ref := &corev1.ObjectReference{APIVersion: cnpGroupVersion.String(), Kind: "ClusterNetworkPolicy", Name: key.policy, UID: uid}
		a.events.recorder.Event(ref, corev1.EventTypeWarning, ReasonPolicyProblem,
			truncate("not enforced: "+text+"; each rule with such a part fails closed (an Accept rule matches nothing, a Deny or Pass rule denies its direction to the subjects), the rest of the policy is enforced"))
		return true
	}
	np := a.store.policy(key.policy)
	if np == nil {
		return false
	}
	a.log.Warn("NetworkPolicy partly not enforced", "policy", key.policy, "problems", text)
	a.events.recorder.Event(np, corev1.EventTypeWarning, ReasonPolicyProblem,
		truncate("not enforced: "+text+"; the rest of the policy is enforced and it still isolates the pods it selects"))
	return true
}

func truncate(s string) string {
	if len(s) > maxEventMessageLength {
		return s[:maxEventMessageLength-3] + "..."
	}
	return s
}
