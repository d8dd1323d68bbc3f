package synth

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

func TestGenerate(t *testing.T) {
	cfg := Config{Pods: 3000, Policies: 200, Nodes: 20, Namespaces: 30, PodsOnNode: 110, Seed: 42}
	s := Generate(cfg)
	if !reflect.DeepEqual(s, Generate(cfg)) {
		t.Fatal("the same config gave two different clusters")
	}
	if reflect.DeepEqual(s.Pods, Generate(Config{Pods: 3000, Policies: 200, Nodes: 20, Namespaces: 30, PodsOnNode: 110, Seed: 43}).Pods) {
		t.Error("the seed changes nothing")
	}
	if len(s.Pods) != cfg.Pods || len(s.Policies) != cfg.Policies || len(s.Nodes) != cfg.Nodes || len(s.Namespaces) != cfg.Namespaces {
		t.Errorf("sizes %d pods, %d policies, %d nodes, %d namespaces", len(s.Pods), len(s.Policies), len(s.Nodes), len(s.Namespaces))
	}
	onNode, hostNet, finished := 0, 0, 0
	seen := map[netip.Addr]string{}
	for _, p := range s.Pods {
		if p.NodeName == NodeName(0) {
			onNode++
		}
		if p.HostNetwork {
			hostNet++
			continue
		}
		if !p.Enforceable() {
			finished++
		}
		if len(p.IPs) != 2 || !p.IPs[0].Is4() || !p.IPs[1].Is6() {
			t.Fatalf("pod %s is not dual-stack: %v", p.Key(), p.IPs)
		}
		for _, ip := range p.IPs {
			if other, dup := seen[ip]; dup {
				t.Fatalf("%s and %s share %s", other, p.Key(), ip)
			}
			seen[ip] = p.Key()
			node := s.Nodes[nodeIndex(t, s.Nodes, p.NodeName)]
			inside := false
			for _, c := range node.PodCIDRs {
				inside = inside || c.Contains(ip)
			}
			if !inside {
				t.Fatalf("%s: %s outside its node's pod CIDRs %v", p.Key(), ip, node.PodCIDRs)
			}
		}
	}
	if onNode != cfg.PodsOnNode {
		t.Errorf("%d pods on %s, want %d", onNode, NodeName(0), cfg.PodsOnNode)
	}
	if hostNet == 0 || finished == 0 {
		t.Errorf("want some host-network (%d) and finished (%d) pods", hostNet, finished)
	}
}

func nodeIndex(t *testing.T, nodes []*cluster.Node, name string) int {
	t.Helper()
	for i, n := range nodes {
		if n.Name == name {
			return i
		}
	}
	t.Fatalf("no node %s", name)
	return 0
}
