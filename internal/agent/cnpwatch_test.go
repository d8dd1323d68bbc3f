package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	cnpfake "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned/fake"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
)

// fakeDiscovery serves the ClusterNetworkPolicy resource while served is
// set, and answers 404 for its group version otherwise, as an API server
// without the CRD does.
type fakeDiscovery struct {
	served atomic.Bool
	calls  atomic.Int32
}

func (d *fakeDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	d.calls.Add(1)
	if gv != cnpGroupVersion.String() || !d.served.Load() {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, gv)
	}
	return &metav1.APIResourceList{GroupVersion: gv, APIResources: []metav1.APIResource{{Name: cnpResource, Kind: "ClusterNetworkPolicy"}}}, nil
}

// changes records what a store hands to the compiler.
type changes struct {
	mu  sync.Mutex
	cnp map[string]*cluster.ClusterNetworkPolicy
}

func (c *changes) SetNamespace(*cluster.Namespace)       {}
func (c *changes) DeleteNamespace(string)                {}
func (c *changes) SetPod(*cluster.Pod)                   {}
func (c *changes) DeletePod(string)                      {}
func (c *changes) SetPolicy(*networkingv1.NetworkPolicy) {}
func (c *changes) DeletePolicy(string)                   {}
func (c *changes) SetNode(*cluster.Node)                 {}
func (c *changes) DeleteNode(string)                     {}
func (c *changes) SetClusterNetworkPolicy(p *cluster.ClusterNetworkPolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cnp[p.Name] = p
}
func (c *changes) DeleteClusterNetworkPolicy(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cnp, name)
}

func (c *changes) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.cnp {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func testCNP(name string, peer v1beta1.ClusterNetworkPolicyEgressPeer) *v1beta1.ClusterNetworkPolicy {
	return &v1beta1.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier: v1beta1.AdminTier, Priority: 10,
			Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Egress: []v1beta1.ClusterNetworkPolicyEgressRule{{
				Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To:     []v1beta1.ClusterNetworkPolicyEgressPeer{peer},
			}},
		},
	}
}

// TestCNPWatchFollowsTheCRD: without the resource the agent holds no
// ClusterNetworkPolicy and asks discovery on every interval; once it is
// served the informer starts without a restart and its objects reach the
// compiler (with validation's problems beside them); when it goes they
// leave the compiler and late events of the stopped informer are ignored.
func TestCNPWatchFollowsTheCRD(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := newStore(log)
	disc := &fakeDiscovery{}
	client := cnpfake.NewSimpleClientset(
		testCNP("deny-web", v1beta1.ClusterNetworkPolicyEgressPeer{Networks: []v1beta1.CIDR{"192.0.2.0/24"}}),
		testCNP("by-name", v1beta1.ClusterNetworkPolicyEgressPeer{DomainNames: []v1beta1.DomainName{"example.com"}}))
	w := newCNPWatch(log, disc, client, st, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	synced, err := w.startup(ctx)
	if err != nil || synced != nil {
		t.Fatalf("startup without the CRD = %v, %v; want no informer and no error", synced, err)
	}
	got := &changes{cnp: map[string]*cluster.ClusterNetworkPolicy{}}
	if _, n := st.applyTo(got); n != 0 || len(got.names()) != 0 {
		t.Fatalf("without the CRD: %d ClusterNetworkPolicies handed (%v), want none", n, got.names())
	}
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	waitFor(t, "discovery polled again", func() bool { return disc.calls.Load() > 3 })

	disc.served.Store(true)
	waitFor(t, "both ClusterNetworkPolicies handed to the compiler", func() bool {
		st.applyTo(got)
		return slices.Equal(got.names(), []string{"by-name", "deny-web"})
	})
	problems := st.clusterPolicyProblems()
	if len(problems) != 1 || problems[0].Kind != plan.KindClusterNetworkPolicy || problems[0].Policy != "by-name" ||
		problems[0].Field != "spec.egress[0].to[0].domainNames" {
		t.Errorf("validation problems = %+v, want one of by-name at spec.egress[0].to[0].domainNames", problems)
	}

	st.mu.Lock()
	epoch := st.cnp.epoch
	st.mu.Unlock()
	disc.served.Store(false)
	waitFor(t, "the ClusterNetworkPolicies removed from the compiler", func() bool {
		st.applyTo(got)
		return len(got.names()) == 0
	})
	st.setClusterPolicy(epoch, testCNP("late", v1beta1.ClusterNetworkPolicyEgressPeer{Networks: []v1beta1.CIDR{"192.0.2.0/24"}}))
	if _, n := st.applyTo(got); n != 0 || len(got.names()) != 0 {
		t.Errorf("a stopped informer's late event was handed over: %d, %v", n, got.names())
	}
	cancel()
	<-done
}

// TestCNPWatchHoldsAHalfListedTier: objects of an informer started after
// the first sync wait in the store until its initial list is complete.
func TestCNPWatchHoldsAHalfListedTier(t *testing.T) {
	st := newStore(slog.New(slog.NewTextHandler(io.Discard, nil)))
	st.beginClusterPolicies(1, true)
	st.setClusterPolicy(1, testCNP("a", v1beta1.ClusterNetworkPolicyEgressPeer{Networks: []v1beta1.CIDR{"192.0.2.0/24"}}))
	got := &changes{cnp: map[string]*cluster.ClusterNetworkPolicy{}}
	if _, n := st.applyTo(got); n != 0 || len(got.names()) != 0 {
		t.Fatalf("while listing: %d handed (%v), want none", n, got.names())
	}
	st.listedClusterPolicies(1)
	if _, n := st.applyTo(got); n != 1 || !slices.Equal(got.names(), []string{"a"}) {
		t.Errorf("after the list: %d handed (%v), want a", n, got.names())
	}
	st.deleteClusterPolicy(1, "a")
	if _, n := st.applyTo(got); n != 0 || len(got.names()) != 0 {
		t.Errorf("after the deletion: %d held (%v), want none", n, got.names())
	}
}

// TestCNPWatchRechecksOnNotFound: a list or watch answered 404 asks
// discovery at once, not at the next interval (an hour here).
func TestCNPWatchRechecksOnNotFound(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := newStore(log)
	disc := &fakeDiscovery{}
	disc.served.Store(true)
	w := newCNPWatch(log, disc, cnpfake.NewSimpleClientset(), st, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := w.startup(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	disc.served.Store(false)
	w.watchError(ctx, nil, apierrors.NewNotFound(schema.GroupResource{Group: cnpGroupVersion.Group, Resource: cnpResource}, ""))
	waitFor(t, "the informer stopped after the 404", func() bool { return !st.clusterPoliciesFrom(1) })
	cancel()
	<-done
}

// TestCNPWatchStartupRetriesDiscovery: a failing discovery at startup is
// retried rather than read as "no CRD", which would enforce without an
// admin tier that exists.
func TestCNPWatchStartupRetriesDiscovery(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	disc := &failingDiscovery{failures: 2}
	disc.served.Store(true)
	w := newCNPWatch(log, disc, cnpfake.NewSimpleClientset(), newStore(log), time.Second)
	synced, err := w.startup(t.Context())
	if err != nil || synced == nil {
		t.Fatalf("startup = %v, %v; want the informer started after the failures", synced, err)
	}
	if disc.calls != 3 {
		t.Errorf("discovery asked %d times, want 3", disc.calls)
	}
	w.stop()
}

// failingDiscovery answers 503 a few times, then as fakeDiscovery.
type failingDiscovery struct {
	fakeDiscovery
	failures, calls int
}

func (d *failingDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	d.calls++
	if d.calls <= d.failures {
		return nil, apierrors.NewGenericServerResponse(http.StatusServiceUnavailable, "get", schema.GroupResource{}, "", "busy", 1, true)
	}
	return d.fakeDiscovery.ServerResourcesForGroupVersion(gv)
}

// TestReportClusterPolicyProblems: a ClusterNetworkPolicy's problems, the
// compiler's and validation's, give one Warning on the object naming the
// fields, a field both report counted once, and the kind's gauges.
func TestReportClusterPolicyProblems(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &objectRecorder{FakeRecorder: record.NewFakeRecorder(10)}
	rec.IncludeObject = true
	a := &agent{log: log, store: newStore(log), metrics: newMetrics(),
		events: &eventSink{recorder: rec, reported: map[problemKey]string{}}}
	a.store.beginClusterPolicies(1, false)
	a.store.setClusterPolicy(1, testCNP("by-name", v1beta1.ClusterNetworkPolicyEgressPeer{DomainNames: []v1beta1.DomainName{"example.com"}}))
	a.store.setClusterPolicy(1, testCNP("fine", v1beta1.ClusterNetworkPolicyEgressPeer{Networks: []v1beta1.CIDR{"192.0.2.0/24"}}))
	compiled := []plan.Problem{
		{Kind: plan.KindClusterNetworkPolicy, Policy: "by-name", Field: "spec.egress[0].to[0].domainNames", Message: "domainNames are not enforced"},
		{Kind: plan.KindClusterNetworkPolicy, Policy: "by-name", Field: "spec.egress[0].protocols[0]", Message: "names no protocol"},
	}
	a.reportProblems(0, 2, &plan.Plan{Problems: compiled})
	if len(rec.Events) != 1 {
		t.Fatalf("%d events, want 1", len(rec.Events))
	}
	ev := <-rec.Events
	for _, want := range []string{"Warning " + ReasonPolicyProblem, "spec.egress[0].to[0].domainNames: domainNames are not enforced",
		"spec.egress[0].protocols[0]: names no protocol", "kind=ClusterNetworkPolicy", "apiVersion=policy.networking.k8s.io/v1beta1"} {
		if !strings.Contains(ev, want) {
			t.Errorf("event %q does not contain %q", ev, want)
		}
	}
	if ref, ok := rec.last.(*corev1.ObjectReference); !ok || ref.Name != "by-name" || ref.UID != "uid-by-name" {
		t.Errorf("event on %+v, want the ClusterNetworkPolicy by-name with its UID", rec.last)
	}
	if strings.Count(ev, "spec.egress[0].to[0].domainNames:") != 1 {
		t.Errorf("event %q reports the domainNames field twice", ev)
	}
	for state, want := range map[string]float64{"enforced": 1, "rejected": 1} {
		if got := gauge(t, a.metrics.policies.WithLabelValues("ClusterNetworkPolicy", state)); got != want {
			t.Errorf("kube_fence_policies{kind=ClusterNetworkPolicy,state=%s} = %v, want %v", state, got, want)
		}
	}
	if got := gauge(t, a.metrics.policies.WithLabelValues("NetworkPolicy", "rejected")); got != 0 {
		t.Errorf("NetworkPolicy rejected gauge = %v, want 0", got)
	}

	// Validation alone still reports (the compiler of this branch may not
	// know the field), and only when the text changes.
	a.reportProblems(0, 2, &plan.Plan{})
	a.reportProblems(0, 2, &plan.Plan{})
	if len(rec.Events) != 1 {
		t.Fatalf("validation only, twice: %d events, want 1", len(rec.Events))
	}
	if ev := <-rec.Events; !strings.Contains(ev, "spec.egress[0].to[0].domainNames: Forbidden") {
		t.Errorf("validation's event %q does not name the field", ev)
	}
}

// objectRecorder is a FakeRecorder that keeps the object of the last
// event, which FakeRecorder prints only by kind.
type objectRecorder struct {
	*record.FakeRecorder
	last runtime.Object
}

func (r *objectRecorder) Event(obj runtime.Object, eventtype, reason, message string) {
	r.last = obj
	r.FakeRecorder.Event(obj, eventtype, reason, message)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTrimClusterPolicyKeepsAuditMode: the informer's trimming drops every
// annotation but the audit mode's, which the pipeline needs.
func TestTrimClusterPolicyKeepsAuditMode(t *testing.T) {
	in := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "guard", Annotations: map[string]string{
		cluster.ModeAnnotation: cluster.ModeAudit, "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}
	out, err := trimClusterPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1beta1.ClusterNetworkPolicy)
	if len(got.Annotations) != 1 || !cluster.ClusterNetworkPolicyFromAPI(got).Audit {
		t.Errorf("trimmed annotations %v; want only %s", got.Annotations, cluster.ModeAnnotation)
	}
	in.Annotations = nil
	if out, _ = trimClusterPolicy(in); out.(*v1beta1.ClusterNetworkPolicy).Annotations != nil {
		t.Errorf("an unannotated policy gained annotations: %v", out.(*v1beta1.ClusterNetworkPolicy).Annotations)
	}
}
