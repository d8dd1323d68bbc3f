package enforce

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// manyOnOne is test/limits' case of 1,000 policies selecting one pod, each
// allowing one of 50 clients on a port of its own.
func manyOnOne(i int) *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(int32(1000 + i))
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: fmt.Sprintf("many-%d", i)},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "target"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"client": fmt.Sprint(i % 50)}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}}}}
}

func manyOnOneCluster() *cluster.Snapshot {
	s := cutCluster()
	pod := func(name string, labels map[string]string, ip string) *cluster.Pod {
		return &cluster.Pod{Namespace: "x", Name: name, Labels: labels, NodeName: "n1", Phase: corev1.PodRunning,
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	s.Pods = append(s.Pods, pod("target", map[string]string{"app": "target"}, "10.42.0.10"))
	for i := range 50 {
		s.Pods = append(s.Pods, pod(fmt.Sprintf("client-%d", i), map[string]string{"client": fmt.Sprint(i)}, fmt.Sprintf("10.42.0.%d", 100+i)))
	}
	return s
}

// BenchmarkManyPoliciesOnOnePod adds the 1,000 policies one at a time with
// a sync after each, as the agent's writer loop may when their watch
// events arrive apart: one iteration is the whole burst. The cost of the
// last syncs is what an unrelated change waits for behind them.
func BenchmarkManyPoliciesOnOnePod(b *testing.B) {
	b.Run("nfttest", func(b *testing.B) {
		benchManyPolicies(b, func() Conn { return nfttest.New() })
	})
	b.Run("kernel", func(b *testing.B) {
		ns := testenv.NetNS(b)
		benchManyPolicies(b, func() Conn {
			conn, err := kernel.Open(kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipAuto})
			if err != nil {
				b.Fatal(err)
			}
			return conn
		})
	})
}

func benchManyPolicies(b *testing.B, open func() Conn) {
	var last *Sync
	var worst time.Duration
	for b.Loop() {
		p := New("n1", policy.Options{DefaultDenyUnknown: true}, open())
		p.Load(manyOnOneCluster())
		if _, err := p.Sync(); err != nil {
			b.Fatal(err)
		}
		for i := range 1000 {
			p.SetPolicy(manyOnOne(i))
			s, err := p.Sync()
			if err != nil {
				b.Fatal(err)
			}
			last = s
			took := s.Compile.Wall + s.Render.Wall + s.Transaction.Wall
			worst = max(worst, took)
		}
		if err := p.DeleteTable(); err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
	// The 1,000th sync: what a change waits for behind the burst's end.
	b.ReportMetric(float64(last.Compile.Wall.Microseconds())/1000, "last-compile-ms")
	b.ReportMetric(float64(last.Render.Wall.Microseconds())/1000, "last-render-ms")
	b.ReportMetric(float64(last.Transaction.Wall.Microseconds())/1000, "last-transaction-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-apply-ms")
}
