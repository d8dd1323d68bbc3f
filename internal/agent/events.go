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
// problem on the NetworkPolicy that has it.
type eventSink struct {
	nodeName    string
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	reported    map[string]string // policy key -> problems already reported
}

func newEventSink(client kubernetes.Interface, node string) *eventSink {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &eventSink{
		nodeName:    node,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventComponent, Host: node}),
		reported:    map[string]string{},
	}
}

func (e *eventSink) shutdown() { e.broadcaster.Shutdown() }

// node reports a transition of the node's enforcement state.
func (e *eventSink) node(st *store, degraded bool, reason string) {
	uid, _ := st.nodeRef()
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: e.nodeName, UID: uid}
	if degraded {
		e.recorder.Event(ref, corev1.EventTypeWarning, ReasonDegraded, truncate("NetworkPolicy enforcement degraded, the last committed rules stay in force: "+reason))
		return
	}
	e.recorder.Event(ref, corev1.EventTypeNormal, ReasonRecovered, "NetworkPolicy enforcement recovered: the kernel holds the desired rules again")
}

// reportProblems emits a Warning on each NetworkPolicy whose problems changed
// since the last report, and updates the policy gauges. It looks only at the
// policies with problems now or at the last report, not at every policy:
// it runs on every sync.
func (a *agent) reportProblems(policies int, plan *plan.Plan) {
	byPolicy := map[string][]string{}
	for _, p := range plan.Problems {
		byPolicy[p.Policy] = append(byPolicy[p.Policy], p.Field+": "+p.Message)
	}
	a.metrics.policies.WithLabelValues("enforced").Set(float64(policies - len(byPolicy)))
	a.metrics.policies.WithLabelValues("rejected").Set(float64(len(byPolicy)))
	for key, msgs := range byPolicy {
		text := strings.Join(msgs, "; ")
		if text == a.events.reported[key] {
			continue
		}
		np := a.store.policy(key)
		if np == nil {
			continue // deleted since the sync took it; the next sync clears it
		}
		a.events.reported[key] = text
		a.log.Warn("NetworkPolicy partly not enforced", "policy", key, "problems", text)
		a.events.recorder.Event(np, corev1.EventTypeWarning, ReasonPolicyProblem,
			truncate("not enforced: "+text+"; the rest of the policy is enforced and it still isolates the pods it selects"))
	}
	for key := range a.events.reported {
		if _, ok := byPolicy[key]; !ok {
			delete(a.events.reported, key) // fixed or deleted: a new problem is reported again
		}
	}
}

func truncate(s string) string {
	if len(s) > maxEventMessageLength {
		return s[:maxEventMessageLength-3] + "..."
	}
	return s
}
