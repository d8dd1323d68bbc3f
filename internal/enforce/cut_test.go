package enforce

import (
	"errors"
	"net/netip"
	"testing"

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
// flows, as conntrack.Conn would to the node's entries.
type fakeCutter struct {
	flows []conntrack.Flow
	fail  int // the next fail calls fail
	calls int
	cut   [][]conntrack.Flow // the flows each call would delete
}

var errCut = errors.New("injected conntrack failure")

func (f *fakeCutter) Cut(allowed conntrack.Allowed) (conntrack.Result, error) {
	f.calls++
	if f.fail > 0 {
		f.fail--
		return conntrack.Result{}, errCut
	}
	res := conntrack.Result{Entries: len(f.flows), Judged: len(f.flows)}
	for _, fl := range f.flows {
		if !allowed(fl) {
			res.Cut = append(res.Cut, fl)
		}
	}
	f.cut = append(f.cut, res.Cut)
	return res, nil
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
	return p, conn, cutter
}

// TestCutJudgesEachFlowWithTheNewPlan: the cut runs after every commit,
// judges every flow with the plan just committed, and takes only the
// flows that plan denies; an idle sync cuts nothing.
func TestCutJudgesEachFlowWithTheNewPlan(t *testing.T) {
	p, _, cutter := cutPipeline(t)
	s, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if s.Cut == nil || len(s.Cut.Cut) != 0 {
		t.Fatalf("first sync: cut %v, want a cut that found nothing denied", s.Cut)
	}
	if s, err = p.Sync(); err != nil || s.Cut != nil || cutter.calls != 1 {
		t.Fatalf("idle sync: err=%v cut=%v calls=%d; nothing was committed, so nothing is due", err, s.Cut, cutter.calls)
	}

	p.SetPolicy(ingressTo80())
	if s, err = p.Sync(); err != nil {
		t.Fatal(err)
	}
	want := []conntrack.Flow{cutter.flows[1], cutter.flows[2]}
	if s.Cut == nil || !equalFlows(s.Cut.Cut, want) {
		t.Fatalf("after a-80: cut %v, want %v", s.Cut, want)
	}

	// Deleting the policy only widens: nothing can be denied, no cut runs.
	p.DeletePolicy("x/a-80")
	if s, err = p.Sync(); err != nil || s.Result.Messages == 0 || s.Cut != nil || cutter.calls != 2 {
		t.Fatalf("after the deletion: err=%v cut=%v calls=%d, want a commit and no cut", err, s.Cut, cutter.calls)
	}
}

// TestCutRelabel: a client relabelled out of the selector that allows it
// loses its connections; relabelled back, which only widens, no cut runs.
func TestCutRelabel(t *testing.T) {
	p, _, _ := cutPipeline(t)
	fromB := ingressTo80()
	fromB.Name = "a-from-b"
	fromB.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}}}}
	p.SetPolicy(fromB)
	s, err := p.Sync()
	if err != nil {
		t.Fatal(err)
	}
	bToA := []conntrack.Flow{tcp(podB, podA, 40000, 80), tcp(podB, podA, 40001, 8080)}
	if s.Cut == nil || !equalFlows(s.Cut.Cut, []conntrack.Flow{tcp(remote, podA, 40002, 81)}) {
		t.Fatalf("a-from-b: cut %v, want only the remote flow", s.Cut)
	}
	b := cutCluster().Pods[1]
	b.Labels = map[string]string{"app": "c"}
	p.SetPod(b)
	if s, err = p.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.Cut == nil || !equalFlows(s.Cut.Cut, append(bToA, tcp(remote, podA, 40002, 81))) {
		t.Fatalf("x/b relabelled out of app=b: cut %v, want both of its flows to x/a (and the remote one)", s.Cut)
	}
	p.SetPod(cutCluster().Pods[1])
	if s, err = p.Sync(); err != nil || s.Result.Messages == 0 || s.Cut != nil {
		t.Fatalf("x/b relabelled back: err=%v cut=%v, want a commit and no cut", err, s.Cut)
	}
}

// TestFailedCutIsRetried: a cut that fails is a pipeline error of its own
// stage; the table stays committed, and the next Sync cuts even though
// nothing changed.
func TestFailedCutIsRetried(t *testing.T) {
	p, conn, cutter := cutPipeline(t)
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(ingressTo80())
	cutter.fail = 1
	s, err := p.Sync()
	if StageOf(err) != StageCut || !errors.Is(err, errCut) {
		t.Fatalf("failed cut: err=%v stage %q, want stage %q", err, StageOf(err), StageCut)
	}
	requireKernel(t, conn, s.Table)
	s, err = p.Sync()
	if err != nil || s.Result.Messages != 0 || s.Cut == nil || len(s.Cut.Cut) != 2 {
		t.Fatalf("retry: err=%v messages=%d cut=%v, want the two denied flows cut with no transaction", err, s.Result.Messages, s.Cut)
	}
}

// TestRepairCuts: a table replaced by someone else may have let denied
// connections open, so the repair is followed by a cut.
func TestRepairCuts(t *testing.T) {
	p, conn, cutter := cutPipeline(t)
	p.SetPolicy(ingressTo80())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	chk, err := p.Verify()
	if err != nil || chk.Cut != nil {
		t.Fatalf("verify of an untouched table: err=%v cut=%v", err, chk.Cut)
	}
	conn.Tamper(func(*nft.Table) *nft.Table { return nil })
	chk, err = p.Verify()
	if err != nil || chk.Repair == nil || chk.Cut == nil || len(chk.Cut.Cut) != 2 {
		t.Fatalf("verify of a deleted table: err=%v repair=%v cut=%v", err, chk.Repair != nil, chk.Cut)
	}
	if cutter.calls != 2 {
		t.Fatalf("%d cuts, want 2 (the commit, the repair)", cutter.calls)
	}
}

func TestKeepCutsNothing(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{}, conn)
	p.Load(cutCluster())
	p.SetPolicy(ingressTo80())
	if s, err := p.Sync(); err != nil || s.Cut != nil {
		t.Fatalf("without a cutter: err=%v cut=%v", err, s.Cut)
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
