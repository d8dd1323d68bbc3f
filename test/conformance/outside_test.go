package conformance

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/conformance"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

// What the NetworkPolicy API leaves to the implementation, pinned with
// real packets. docs/conformance.md lists kube-fence's choices.

// expectAll probes targets and checks each against want, and the reference
// evaluator against want too: the dataplane and the documented semantics
// must make the same choice.
func expectAll(t *testing.T, l *lab.Lab, targets []lab.Target, want func(t lab.Target) bool) {
	t.Helper()
	rs, err := l.ProbeTargets(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	snap := l.Snapshot()
	for _, r := range rs {
		w := want(r.Target)
		if r.Connected != w || r.Problem != "" {
			t.Errorf("%s -> %s %s/%d %s: connected=%v %s, want %v", r.From, r.To, r.Protocol, r.Port, r.IP, r.Connected, r.Problem, w)
		}
		if ref := conformance.Reference(snap, r.Target); ref != w {
			t.Errorf("%s -> %s %s/%d %s: the reference evaluator says %v, want %v", r.From, r.To, r.Protocol, r.Port, r.IP, ref, w)
		}
	}
}

func denyAll(namespaces ...string) func(s *conformance.State) {
	return func(s *conformance.State) {
		for _, ns := range namespaces {
			s.Apply(conformance.Policy(ns, "deny-all", conformance.Labels(), conformance.Ingress(), conformance.Egress()))
		}
	}
}

func update(t *testing.T, l *lab.Lab, change func(s *conformance.State)) {
	t.Helper()
	s := &conformance.State{Snap: l.Snapshot()}
	change(s)
	if err := l.Update(context.Background(), s.Snap); err != nil {
		t.Fatal(err)
	}
}

// TestOutsideTheAPILoopback: a pod reaching its own addresses is always
// allowed, even when policies isolate it in both directions: the traffic
// never leaves the pod's network namespace, so no node sees it. (Upstream
// ignores loopback cells for this reason: implementations differ.)
func TestOutsideTheAPILoopback(t *testing.T) {
	l, _ := startLab(t, oneNode)
	update(t, l, denyAll(conformance.Namespaces...))
	var self, other []lab.Target
	for _, tg := range l.Targets() {
		if tg.From == "x/a" && tg.To == "x/b" {
			other = append(other, tg)
			tg.To = "x/a"
			tg.IP, _ = family(l.Snapshot(), "x/a", tg.IP.Is4())
			self = append(self, tg)
		}
	}
	if len(self) != 12 {
		t.Fatalf("%d loopback probes, want 12 (3 protocols, 2 ports, 2 families)", len(self))
	}
	expectAll(t, l, self, func(lab.Target) bool { return true })
	expectAll(t, l, other, func(lab.Target) bool { return false })
}

func family(s *cluster.Snapshot, key string, v4 bool) (netip.Addr, bool) {
	for _, p := range s.Pods {
		if p.Key() == key {
			for _, ip := range p.IPs {
				if ip.Is4() == v4 {
					return ip, true
				}
			}
		}
	}
	return netip.Addr{}, false
}

// hostNetworkModel is the model on two nodes plus a hostNetwork pod on each
// node (kube-system/h0 on n0, kube-system/h1 on n1), labelled pod=h and
// serving TCP/80 on the node's addresses.
func hostNetworkModel(t *testing.T) *cluster.Snapshot {
	t.Helper()
	s, err := conformance.Model(2)
	if err != nil {
		t.Fatal(err)
	}
	for i, node := range []string{"n0", "n1"} {
		s.Pods = append(s.Pods, &cluster.Pod{
			Namespace: "kube-system", Name: fmt.Sprintf("h%d", i), NodeName: node, HostNetwork: true,
			Labels: labels.Set{conformance.PodLabel: "h"}, Phase: corev1.PodRunning,
			Ports: []cluster.ContainerPort{{Name: "serve-80-tcp", Port: 80, Protocol: corev1.ProtocolTCP}},
		})
	}
	if err := scenario.Normalize(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOutsideTheAPIHostNetworkAndNodes pins traffic with hostNetwork pods
// and with the nodes themselves, with every namespace (kube-system too)
// isolated in both directions:
//   - between a pod and its own node (a hostNetwork pod on it): always
//     allowed, both ways (the node must reach its pods for probes, and
//     kube-fence filters only forwarded traffic);
//   - hostNetwork pods are never selected: h0 -> h1 connects though a
//     deny-all selects them by namespace;
//   - between a pod and another node: that node's address is an ordinary
//     address, blocked by deny-all, not matched by pod or namespace
//     selectors (hostNetwork pods are no pods to NetworkPolicy), matched by
//     an ipBlock holding it.
func TestOutsideTheAPIHostNetworkAndNodes(t *testing.T) {
	snap := hostNetworkModel(t)
	l := startLabWith(t, twoNodes, snap)
	node := map[string]string{}
	for _, p := range snap.Pods {
		node[p.Key()] = p.NodeName
	}
	isHost := func(key string) bool { return strings.HasPrefix(key, "kube-system/") }
	var targets []lab.Target
	for _, tg := range l.Targets() {
		if (isHost(tg.From) || isHost(tg.To)) && (tg.Protocol == corev1.ProtocolTCP && tg.Port == 80) {
			targets = append(targets, tg)
		}
	}
	if len(targets) != (2*9*2+2)*2 {
		t.Fatalf("%d probes with hostNetwork pods, want 76", len(targets))
	}
	sameNode := func(tg lab.Target) bool { return node[tg.From] == node[tg.To] || (isHost(tg.From) && isHost(tg.To)) }

	update(t, l, denyAll("x", "y", "z", "kube-system"))
	t.Run("deny-all", func(t *testing.T) { expectAll(t, l, targets, sameNode) })

	allPods := conformance.PodNamespacePeer(conformance.Labels(), conformance.Labels())
	update(t, l, func(s *conformance.State) {
		for _, ns := range conformance.Namespaces {
			s.Apply(conformance.Policy(ns, "all-pods", conformance.Labels(),
				conformance.Ingress(conformance.From(nil, allPods)), conformance.Egress(conformance.To(nil, allPods))))
		}
	})
	t.Run("selectors for every pod", func(t *testing.T) { expectAll(t, l, targets, sameNode) })

	var blocks []string
	for i := range 2 {
		for _, p := range scenario.FabricAddrs(i) {
			blocks = append(blocks, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()).String())
		}
	}
	update(t, l, func(s *conformance.State) {
		for _, ns := range conformance.Namespaces {
			var in, out = conformance.From(nil), conformance.To(nil)
			for _, b := range blocks {
				in.From = append(in.From, conformance.BlockPeer(b))
				out.To = append(out.To, conformance.BlockPeer(b))
			}
			s.Apply(conformance.Policy(ns, "node-addresses", conformance.Labels(), conformance.Ingress(in), conformance.Egress(out)))
		}
	})
	t.Run("ipBlock of the node addresses", func(t *testing.T) { expectAll(t, l, targets, func(lab.Target) bool { return true }) })
	if !slices.Contains(blocks, "10.41.0.1/32") {
		t.Fatalf("fabric addresses %v: the address plan changed", blocks)
	}
}
