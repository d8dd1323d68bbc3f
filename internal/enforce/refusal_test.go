package enforce

import (
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestForeignSetRefusedByTheKernelIsReplaced: another process creates, in
// kube-fence's table, a set under the name the next plan needs, with the
// same key type but a size limit of one element (possible while the table
// is not owned: an agent restarting, or --table-ownership=off). The
// kernel refuses the transaction that fills it (ENFILE), and a repair that
// reads the table back sees "the same set" and is refused the same way.
// The pipeline must not stay stuck: after a refused repair it rebuilds the
// table in one transaction, and the kernel then holds the desired table.
func TestForeignSetRefusedByTheKernelIsReplaced(t *testing.T) {
	ns := testenv.NetNS(t)
	p, err := Open("n1", policy.Options{DefaultDenyUnknown: true}, kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Load(cutCluster())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	port := intstr.FromInt32(80)
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "from-blocks"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
				// Each peer is two ranges, more than the foreign set's size.
				From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/28", Except: []string{"192.0.2.4/30"}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "198.51.100.0/28", Except: []string{"198.51.100.4/30"}}}},
			}}}}
	p.SetPolicy(np)
	name := newAddr4Set(t, p.Pending())
	if out, err := ns.Command("nft", "add set inet "+nft.TableName+" "+name+" { type ipv4_addr; flags interval; size 1; }"); err != nil {
		t.Fatalf("add the foreign set %s: %v: %s", name, err, out)
	}
	var errs []string
	for try := range 4 {
		_, err := p.Sync()
		if err == nil {
			break
		}
		if StageOf(err) != StageApply {
			t.Fatalf("sync %d: %v, want an apply error", try, err)
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 0 {
		t.Fatal("the kernel accepted elements into a set of size 1: the test proves nothing")
	}
	// Refused twice (the transaction, then the repair from a read back,
	// which sees the foreign set as ours); the third is the rebuild.
	if len(errs) > 2 {
		t.Fatalf("still refused after %d syncs: %s", len(errs), strings.Join(errs, "; "))
	}
	t.Logf("refused %d times, then committed: %s", len(errs), strings.Join(errs, "; "))
	chk, err := p.Verify()
	if err != nil || len(chk.Differences) > 0 {
		t.Fatalf("after the recovery the kernel's table differs: %v %v", err, chk)
	}
}

// newAddr4Set returns the name of an IPv4 address set of more elements
// than one that d adds.
func newAddr4Set(t *testing.T, d *nft.Delta) string {
	t.Helper()
	i := slices.IndexFunc(d.AddSets, func(s *nft.Set) bool { return s.Type == nft.Addr4 && len(s.Elements()) > 1 })
	if i < 0 {
		t.Fatalf("the change adds no IPv4 address set: %v", d.Differences)
	}
	return d.AddSets[i].Name
}

// TestRefusedRepairRebuilds: a refused transaction is followed by a repair
// from a read back; when that is refused too, the next try rebuilds the
// table in one transaction, and a success goes back to differences.
func TestRefusedRepairRebuilds(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{DefaultDenyUnknown: true}, conn)
	p.Load(cutCluster())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(ingressTo80())
	conn.FailApplies(2)
	var rebuilt []bool
	for range 4 {
		s, err := p.Sync()
		rebuilt = append(rebuilt, s.Result.Rebuilt)
		if err == nil {
			break
		}
	}
	if !slices.Equal(rebuilt, []bool{false, false, true}) {
		t.Fatalf("rebuilt per sync %v, want a sync, a repair, then a rebuild", rebuilt)
	}
	p.DeletePolicy("x/a-80")
	if s, err := p.Sync(); err != nil || s.Result.Rebuilt || s.Result.Messages == 0 {
		t.Fatalf("after the rebuild a change sends its difference: rebuilt %v, %v", s.Result.Rebuilt, err)
	}
}
