package enforce

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/nft/nfttest"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// TestPlanOverBudgetKeepsTheLastTable: a policy whose rule of many ports
// and many peers would need more set elements than the budget is not sent
// to the kernel; the last table stays, the error names the policy, and
// once the policy goes the pipeline commits again.
func TestPlanOverBudgetKeepsTheLastTable(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{DefaultDenyUnknown: true}, conn)
	p.maxPeerRanges = 1000
	p.Load(cutCluster())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	before := conn.Transactions()
	big := ingressTo80()
	big.Name = "big"
	// 40 rules of one port each, each from 30 separate ranges of its own:
	// 1,200 ranges, none shared.
	for i := range 40 {
		port := intstr.FromInt32(int32(2000 + 2*i))
		rule := networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}
		for k := range 30 {
			rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("11.%d.%d.0/24", i, 2*k)}})
		}
		big.Spec.Ingress = append(big.Spec.Ingress, rule)
	}
	p.SetPolicy(big)
	s, err := p.Sync()
	if StageOf(err) != StageApply || !errors.Is(err, ErrPlanTooLarge) || !strings.Contains(err.Error(), "x/big") {
		t.Fatalf("over budget: err=%v, want an apply error wrapping ErrPlanTooLarge that names x/big", err)
	}
	if conn.Transactions() != before || s.Result.Messages != 0 {
		t.Fatalf("a transaction was sent for a plan over budget")
	}
	p.DeletePolicy("x/big")
	if _, err := p.Sync(); err != nil {
		t.Fatalf("after the policy went: %v", err)
	}
}

// TestEqualPeersShareOneSet: one rule of many separate ports and many peers
// (the shape that made the kernel exhaust memory before classes shared
// their sets) costs its peers once: within the budget, one chain and one
// pair of sets for every port.
func TestEqualPeersShareOneSet(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{DefaultDenyUnknown: true}, conn)
	p.maxPeerRanges = 1000
	p.Load(cutCluster())
	wide := ingressTo80()
	wide.Name = "wide"
	rule := networkingv1.NetworkPolicyIngressRule{}
	for i := range 200 {
		port := intstr.FromInt32(int32(2000 + 2*i))
		rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Port: &port})
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("11.%d.%d.0/24", i/100, 2*(i%100))}})
	}
	wide.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{rule}
	p.SetPolicy(wide)
	if _, err := p.Sync(); err != nil {
		t.Fatalf("200 ports x 200 peers in one rule: %v", err)
	}
	chains, sets := 0, 0
	for name := range p.desired.Chains {
		if strings.Contains(name, "-tcp-2") {
			chains++
		}
	}
	for name, set := range p.desired.Sets {
		if strings.Contains(name, "-tcp-2") && len(set.Ranges) == 200 {
			sets++
		}
	}
	if chains != 1 || sets != 1 {
		t.Fatalf("the 200 port classes of equal peers have %d chains and %d IPv4 sets of the 200 peers, want 1 and 1", chains, sets)
	}
}

func TestCheckBudgetCountsEveryClass(t *testing.T) {
	conn := nfttest.New()
	p := New("n1", policy.Options{}, conn)
	p.Load(cutCluster())
	p.SetPolicy(ingressTo80())
	if _, err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := checkBudget(p.Plan(), MaxPeerRanges); err != nil {
		t.Fatalf("a one-port policy is over the default budget: %v", err)
	}
	if err := checkBudget(p.Plan(), 0); err == nil {
		t.Fatal("a budget of 0 ranges passes a plan with a profile")
	}
}
