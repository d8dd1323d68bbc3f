package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// TestChaos breaks random clusters in every way an object can be broken and
// checks that the compiler neither panics nor disagrees with the reference
// evaluator: both must fail closed the same way.
func TestChaos(t *testing.T) {
	for seed := range uint64(150) {
		rnd := rand.New(rand.NewPCG(seed, 0xc4a05))
		s := randomSnapshot(rnd)
		for _, np := range s.Policies {
			breakPolicy(rnd, np)
		}
		breakPods(rnd, s)
		plans := planCache(s, Options{DefaultDenyUnknown: rnd.IntN(2) == 0})
		eps := endpoints(s)
		for _, from := range eps {
			for _, to := range eps {
				if !from.IP.IsValid() || !to.IP.IsValid() || from.IP.Is4() != to.IP.Is4() {
					continue
				}
				for _, pp := range probePorts[:8] {
					want := Allowed(s, from, to, pp.proto, pp.port)
					if plans("node-1").DefaultDenyUnknown {
						continue // unknown addresses are denied by design there; no panics is the point
					}
					if got := planAllowed(plans, from, to, pp.proto, pp.port); got != want {
						t.Fatalf("seed %d: %s -> %s %v/%d: plan says %v, reference says %v\n%s",
							seed, describe(from), describe(to), pp.proto, pp.port, got, want, dump(s))
					}
				}
			}
		}
		for _, np := range s.Policies {
			_ = Validate(np)
		}
	}
}

func breakPolicy(rnd *rand.Rand, np *networkingv1.NetworkPolicy) {
	pick := func(n int) bool { return rnd.IntN(n) == 0 }
	badSelectors := []*metav1.LabelSelector{
		{MatchLabels: map[string]string{"bad key!": "x"}},
		{MatchLabels: map[string]string{"app": "bad value!"}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists, Values: []string{"a"}}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "", Operator: metav1.LabelSelectorOpDoesNotExist}}},
	}
	badCIDRs := []string{"", "junk", "10.0.0.0/33", "::ffff:10.0.0.0/104", "010.0.0.0/8", "10.1.0.5/16", "fd00::1/64", "0.0.0.0/0", "::/0", "10.1.0.0/24%eth0"}
	emptyProto := corev1.Protocol("")
	badPorts := []networkingv1.NetworkPolicyPort{
		{Protocol: &emptyProto, Port: ptrTo(intstr.FromInt32(80))},
		{Port: &intstr.IntOrString{Type: 9, IntVal: 80, StrVal: "http"}},
		{Port: ptrTo(intstr.FromInt32(-5))},
		{Port: ptrTo(intstr.FromInt32(80)), EndPort: ptrTo[int32](-1)},
		{Port: ptrTo(intstr.FromString(""))},
		{Port: ptrTo(intstr.FromString("http")), EndPort: ptrTo[int32](8080)},
		{EndPort: ptrTo[int32](80)},
	}
	if pick(8) {
		np.Spec.PodSelector = *badSelectors[rnd.IntN(len(badSelectors))]
	}
	if pick(6) {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, "Sideways")
	}
	if pick(8) {
		np.Namespace = ""
	}
	breakPeers := func(ps []networkingv1.NetworkPolicyPeer) {
		for i := range ps {
			switch rnd.IntN(8) {
			case 0:
				ps[i] = networkingv1.NetworkPolicyPeer{}
			case 1:
				ps[i].PodSelector = badSelectors[rnd.IntN(len(badSelectors))]
			case 2:
				ps[i].IPBlock = &networkingv1.IPBlock{CIDR: badCIDRs[rnd.IntN(len(badCIDRs))],
					Except: []string{badCIDRs[rnd.IntN(len(badCIDRs))]}}
			case 3:
				if ps[i].IPBlock != nil {
					ps[i].NamespaceSelector = &metav1.LabelSelector{}
				}
			}
		}
	}
	breakPorts := func(ps []networkingv1.NetworkPolicyPort) {
		for i := range ps {
			if pick(4) {
				ps[i] = badPorts[rnd.IntN(len(badPorts))]
			}
		}
	}
	for i := range np.Spec.Ingress {
		breakPeers(np.Spec.Ingress[i].From)
		breakPorts(np.Spec.Ingress[i].Ports)
	}
	for i := range np.Spec.Egress {
		breakPeers(np.Spec.Egress[i].To)
		breakPorts(np.Spec.Egress[i].Ports)
	}
}

func breakPods(rnd *rand.Rand, s *cluster.Snapshot) {
	for _, p := range s.Pods {
		switch rnd.IntN(12) {
		case 0:
			p.Ports = append(p.Ports, cluster.ContainerPort{Name: "http", Port: 0}, cluster.ContainerPort{Name: "dns", Port: 53, Protocol: "ICMP"})
		case 1:
			p.IPs = append(p.IPs, netip.Addr{})
		case 2:
			p.Namespace = ""
		case 3:
			p.Phase = corev1.PodFailed
		}
	}
	s.Pods = append(s.Pods, nil)
	s.Namespaces = append(s.Namespaces, nil)
	s.Policies = append(s.Policies, nil)
}
