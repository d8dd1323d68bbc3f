package enforce

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/conntrack"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// fakeCutter records the verdicts it was asked to apply to a fixed list of
// flows, as conntrack.Conn would to the node's entries: each flow found
// denied is judged again under guard before it counts as deleted. The cut
// worker calls it on its own goroutine, so its fields are behind mu.
type fakeCutter struct {
	mu    sync.Mutex
	flows []conntrack.Flow
	fail  int // the next fail calls fail
	calls int
	cut   [][]conntrack.Flow // the flows each call deleted
	// hold, when set, is called with the flows found denied before any
	// is deleted: a test blocks the cut there.
	hold func([]conntrack.Flow)
	// deleted, when set, is called for each flow deleted, with guard held.
	deleted func(conntrack.Flow)
}

var errCut = errors.New("injected conntrack failure")

func (f *fakeCutter) Cut(allowed conntrack.Allowed, guard sync.Locker) (conntrack.Result, error) {
	f.mu.Lock()
	f.calls++
	flows, hold, deleted := f.flows, f.hold, f.deleted
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		return conntrack.Result{}, errCut
	}
	f.mu.Unlock()
	res := conntrack.Result{Entries: len(flows), Judged: len(flows)}
	var denied []conntrack.Flow
	for _, fl := range flows {
		if !allowed(fl) {
			denied = append(denied, fl)
		}
	}
	if hold != nil {
		hold(denied)
	}
	for _, fl := range denied {
		guard.Lock()
		if allowed(fl) {
			res.Spared++
		} else {
			res.Cut = append(res.Cut, fl)
			if deleted != nil {
				deleted(fl)
			}
		}
		guard.Unlock()
	}
	f.mu.Lock()
	f.cut = append(f.cut, res.Cut)
	f.mu.Unlock()
	return res, nil
}

func (f *fakeCutter) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// syncCut syncs, waits for the cut it asked for, and returns the cut's
// result, nil when no cut ran.
func syncCut(t *testing.T, p *Pipeline, f *fakeCutter) (*Sync, *conntrack.Result, error) {
	t.Helper()
	before := f.n()
	s, err := p.Sync()
	if err != nil {
		return s, nil, err
	}
	res, err := p.WaitCut()
	if f.n() == before {
		return s, nil, nil
	}
	return s, res, err
}

func (f *fakeCutter) Close() error { return nil }

var (
	podA   = netip.MustParseAddr("10.42.0.10") // x/a, the server
	podB   = netip.MustParseAddr("10.42.0.11") // x/b, a client on the same node
	remote = netip.MustParseAddr("10.42.1.20") // a pod of another node
	nodeIP = netip.MustParseAddr("192.168.1.1")
)

func tcp(src, dst netip.Addr, sport, dport uint16) conntrack.Flow {
	return conntrack.Flow{Protocol: plan.TCP, Src: netip.AddrPortFrom(src, sport), Dst: netip.AddrPortFrom(dst, dport)}
}

// cutCluster is one node with x/a (app=server) and x/b (app=client).
func cutCluster() *cluster.Snapshot {
	pod := func(name string, ip netip.Addr) *cluster.Pod {
		return &cluster.Pod{Namespace: "x", Name: name, Labels: map[string]string{"app": name}, NodeName: "n1",
			Phase: corev1.PodRunning, IPs: []netip.Addr{ip}}
	}
	return &cluster.Snapshot{
		Nodes: []*cluster.Node{{Name: "n1", Addresses: []netip.Addr{nodeIP},
			PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.42.0.0/24")}}},
		Namespaces: []*cluster.Namespace{{Name: "x", Labels: map[string]string{"kubernetes.io/metadata.name": "x"}}},
		Pods:       []*cluster.Pod{pod("a", podA), pod("b", podB)},
	}
}

// ingressTo80 isolates x/a for ingress and allows TCP 80 from everyone.
func ingressTo80() *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(80)
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a-80"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}},
		}}
}

func cutPipeline(t *testing.T) (*Pipeline, *nfttest.Conn, *fakeCutter) {
	t.Helper()
	conn := nfttest.New()
	p := New("n1", policy.Options{DefaultDenyUnknown: true}, conn)
	p.Load(cutCluster())
	cutter := &fakeCutter{flows: []conntrack.Flow{
		tcp(podB, podA, 40000, 80),                                // still allowed by a-80
		tcp(podB, podA, 40001, 8080),                              // denied once a-80 isolates x/a
		tcp(remote, podA, 40002, 81),                              // denied: ingress of a local pod
		tcp(podA, remote, 40003, 443),                             // a's egress is not isolated
		tcp(nodeIP, podA, 40004, 22),                              // the node may always reach its pods
		tcp(remote, netip.MustParseAddr("10.42.1.21"), 40005, 80), // no pod of this node
	}}
	p.CutConnections(cutter)
	t.Cleanup(func() { p.Close() })
	return p, conn, cutter
}

// TestCutJudgesEachFlowWithTheNewPlan: the cut runs after every commit,
// judges every flow with the plan just committed, and takes only the
// flows that plan denies; an idle sync cuts nothing.
func TestCutJudgesEachFlowWithTheNewPlan(t *testing.T) {
	p, _, cutter := cutPipeline(t)
	_, cut, err := syncCut(t, p, cutter)
	if err != nil {
		t.Fatal(err)
	}
	if cut == nil || len(cut.Cut) != 0 {
		t.Fatalf("first sync: cut %v, want a cut that found nothing denied", cut)
	}
	if _, cut, err = syncCut(t, p, cutter); err != nil || cut != nil || cutter.n() != 1 {
		t.Fatalf("idle sync: err=%v cut=%v calls=%d; nothing was committed, so nothing is due", err, cut, cutter.n())
	}

	p.SetPolicy(ingressTo80())
	if _, cut, err = syncCut(t, p, cutter); err != nil {
		t.Fatal(err)
	}
	want := []conntrack.Flow{cutter.flows[1], cutter.flows[2]}
	if cut == nil || !equalFlows(cut.Cut, want) {
		t.Fatalf("after a-80: cut %v, want %v", cut, want)
	}

	// Deleting the policy only widens: nothing can be denied, no cut runs.
	p.DeletePolicy("x/a-80")
	s, cut, err := syncCut(t, p, cutter)
	if err != nil || s.Result.Messages == 0 || cut != nil || cutter.n() != 2 {
		t.Fatalf("after the deletion: err=%v cut=%v calls=%d, want a commit and no cut", err, cut, cutter.n())
	}
}

// TestCutRelabel: a client relabelled out of the selector that allows it
// loses its connections; relabelled back, which only widens, no cut runs.
func TestCutRelabel(t *testing.T) {
	p, _, cutter := cutPipeline(t)
	fromB := ingressTo80()
	fromB.Name = "a-from-b"
	fromB.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}}}}
	p.SetPolicy(fromB)
	_, cut, err := syncCut(t, p, cutter)
	if err != nil {
		t.Fatal(err)
	}
	bToA := []conntrack.Flow{tcp(podB, podA, 40000, 80), tcp(podB, podA, 40001, 8080)}
	if cut == nil || !equalFlows(cut.Cut, []conntrack.Flow{tcp(remote, podA, 40002, 81)}) {
		t.Fatalf("a-from-b: cut %v, want only the remote flow", cut)
	}
	b := cutCluster().Pods[1]
	b.Labels = map[string]string{"app": "c"}
	p.SetPod(b)
	if _, cut, err = syncCut(t, p, cutter); err != nil {
		t.Fatal(err)
	}
	if cut == nil || !equalFlows(cut.Cut, append(bToA, tcp(remote, podA, 40002, 81))) {
		t.Fatalf("x/b relabelled out of app=b: cut %v, want both of its flows to x/a (and the remote one)", cut)
	}
	p.SetPod(cutCluster().Pods[1])
	s, cut, err := syncCut(t, p, cutter)
	if err != nil || s.Result.Messages == 0 || cut != nil {
		t.Fatalf("x/b relabelled back: err=%v cut=%v, want a commit and no cut", err, cut)
	}
}

// TestFailedCutIsRetried: a cut that fails is an error of its own stage,
// reported to OnCut; the table stays committed, and the worker retries the
// cut although nothing changed.
func TestFailedCutIsRetried(t *testing.T) {
	p, conn, cutter := cutPipeline(t)
	var mu sync.Mutex
	var reported []error
	p.OnCut(func(_ *conntrack.Result, err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() })
	if _, _, err := syncCut(t, p, cutter); err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(ingressTo80())
	cutter.mu.Lock()
	cutter.fail = 1
	cutter.mu.Unlock()
	s, cut, err := syncCut(t, p, cutter)
	if StageOf(err) != StageCut || !errors.Is(err, errCut) {
		t.Fatalf("failed cut: err=%v stage %q, want stage %q", err, StageOf(err), StageCut)
	}
	requireKernel(t, conn, s.Table)
	deadline := time.Now().Add(10 * time.Second)
	for cutter.n() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cut, err = p.WaitCut()
	if err != nil || cut == nil || len(cut.Cut) != 2 || cutter.n() != 3 {
		t.Fatalf("retry: err=%v cut=%v calls=%d, want the two denied flows cut by a third call", err, cut, cutter.n())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 3 || reported[0] != nil || !errors.Is(reported[1], errCut) || reported[2] != nil {
		t.Fatalf("OnCut saw %v, want nil, the injected failure, nil", reported)
	}
}

// TestRepairCuts: a table replaced by someone else may have let denied
// connections open, so the repair is followed by a cut.
func TestRepairCuts(t *testing.T) {
	p, conn, cutter := cutPipeline(t)
	p.SetPolicy(ingressTo80())
	if _, _, err := syncCut(t, p, cutter); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(); err != nil || cutter.n() != 1 {
		t.Fatalf("verify of an untouched table: err=%v calls=%d, want no cut", err, cutter.n())
	}
	conn.Tamper(func(*nft.Table) *nft.Table { return nil })
	chk, err := p.Verify()
	if err != nil || chk.Repair == nil {
		t.Fatalf("verify of a deleted table: err=%v repair=%v", err, chk.Repair != nil)
	}
	cut, err := p.WaitCut()
	if err != nil || cut == nil || len(cut.Cut) != 2 || cutter.n() != 2 {
		t.Fatalf("after the repair: err=%v cut=%v calls=%d, want a second cut of the two denied flows", err, cut, cutter.n())
	}
}

func TestKeepCutsNothing(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{}, conn)
	p.Load(cutCluster())
	p.SetPolicy(ingressTo80())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if cut, err := p.WaitCut(); err != nil || cut != nil {
		t.Fatalf("without a cutter: err=%v cut=%v", err, cut)
	}
}

func TestParseExistingConnections(t *testing.T) {
	for in, want := range map[string]ExistingConnections{"cut": ExistingCut, "keep": ExistingKeep, "": "", "Cut": "", "flush": ""} {
		got, err := ParseExistingConnections(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ParseExistingConnections(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func equalFlows(a, b []conntrack.Flow) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCutOffTheWritersPath: Sync returns while a cut runs; commits during
// it coalesce into one more run; and a flow the newest committed plan
// allows again is spared by the run that judged it under an older one.
func TestCutOffTheWritersPath(t *testing.T) {
	p, _, cutter := cutPipeline(t)
	var mu sync.Mutex
	var runs []conntrack.Result
	p.OnCut(func(r *conntrack.Result, _ error) { mu.Lock(); runs = append(runs, *r); mu.Unlock() })
	if _, _, err := syncCut(t, p, cutter); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan []conntrack.Flow), make(chan struct{})
	cutter.mu.Lock()
	cutter.hold = func(denied []conntrack.Flow) {
		cutter.mu.Lock()
		cutter.hold = nil // only this run is held
		cutter.mu.Unlock()
		started <- denied
		<-release
	}
	cutter.mu.Unlock()

	p.SetPolicy(ingressTo80()) // denies flows 1 (b to a:8080) and 2 (remote to a:81)
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	select {
	case denied := <-started:
		if want := []conntrack.Flow{cutter.flows[1], cutter.flows[2]}; !equalFlows(denied, want) {
			t.Fatalf("held run found %v denied, want %v", denied, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cut never started")
	}
	// The run is held before its first deletion; Sync returned. Two
	// narrowing commits while it is held: ports 80 and 8080, then 8080 only,
	// which allows flow 1 again and denies flow 0 (b to a:80).
	pol := ingressTo80()
	pol.Name = "a-web"
	p80, p8080 := intstr.FromInt32(80), intstr.FromInt32(8080)
	pol.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &p80}, {Port: &p8080}}
	p.DeletePolicy("x/a-80")
	p.SetPolicy(pol)
	if s, err := p.Sync(); err != nil || s.Result.Messages == 0 {
		t.Fatalf("ports 80 and 8080: err=%v, want a commit", err)
	}
	pol = pol.DeepCopy()
	pol.Spec.Ingress[0].Ports = pol.Spec.Ingress[0].Ports[1:]
	p.SetPolicy(pol)
	if s, err := p.Sync(); err != nil || s.Result.Messages == 0 {
		t.Fatalf("port 8080 only: err=%v, want a commit", err)
	}
	close(release)
	if _, err := p.WaitCut(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if cutter.n() != 3 || len(runs) != 3 {
		t.Fatalf("%d cuts (%d reported), want 3: the first sync, the held one, one for both commits during it", cutter.n(), len(runs))
	}
	if held := runs[1]; !equalFlows(held.Cut, []conntrack.Flow{cutter.flows[2]}) || held.Spared != 1 {
		t.Errorf("held run cut %v and spared %d, want only flow 2 cut and flow 1 spared (allowed by the newest plan)", held.Cut, held.Spared)
	}
	if last := runs[2]; !equalFlows(last.Cut, []conntrack.Flow{cutter.flows[0], cutter.flows[2]}) {
		t.Errorf("coalesced run cut %v, want flows 0 and 2", last.Cut)
	}
}

// TestCutNeverUnderAStalePlan flips a policy that denies a flow on and off
// while cuts run, and checks, with the commit lock held at each deletion,
// that the plan in force denies what is deleted (run it with -race).
func TestCutNeverUnderAStalePlan(t *testing.T) {
	p, _, cutter := cutPipeline(t)
	var bad []conntrack.Flow
	cutter.mu.Lock()
	cutter.deleted = func(f conntrack.Flow) {
		if Allowed(p.cut.plan.Load())(f) { // guard held: the plan in the kernel now
			bad = append(bad, f)
		}
	}
	cutter.mu.Unlock()
	for i := range 100 {
		if i%2 == 0 {
			p.SetPolicy(ingressTo80())
		} else {
			p.DeletePolicy("x/a-80")
		}
		if _, err := p.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.WaitCut(); err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("deleted %v under a plan that allowed them", bad)
	}
	t.Logf("%d cuts for 50 narrowing commits", cutter.n())
}
