package probe

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestUDPSourcePortsCycle: one flow gets every ephemeral port once before
// any repeats, and flows do not share a sequence.
func TestUDPSourcePortsCycle(t *testing.T) {
	n := NewNet()
	f := udpFlow{from: "x/a"}
	seen := map[uint16]bool{}
	for range ephemeralPorts {
		p := n.nextUDPPort(f)
		if p < firstEphemeral || p > 60999 {
			t.Fatalf("port %d outside the ephemeral range", p)
		}
		if seen[p] {
			t.Fatalf("port %d repeated after %d probes", p, len(seen))
		}
		seen[p] = true
	}
	if p := n.nextUDPPort(f); !seen[p] {
		t.Fatalf("port %d after a full cycle", p)
	}
	other := udpFlow{from: "x/b"}
	n.nextUDPPort(other)
	if _, ok := n.udpPorts[other]; !ok || len(n.udpPorts) != 2 {
		t.Errorf("flows share a sequence: %v", n.udpPorts)
	}
}

// TestUDPProbesAreNewFlows is the regression test for UDP probes passing as
// established: after answered probes, a rule dropping new UDP flows in the
// destination must block every further probe of the same flow. With source
// ports left to the kernel's random choice, some of 400 probes reused the
// port of an answered one within conntrack's 30 s and connected.
func TestUDPProbesAreNewFlows(t *testing.T) {
	a, b, _, bIPs := pair(t)
	n := NewNet()
	serve(t, n, b, "x/b", bIPs)
	tg := Target{From: "x/a", To: "x/b", IP: bIPs[0], Family: corev1.IPv4Protocol, Protocol: corev1.ProtocolUDP, Port: 80}
	const probes = 400
	run := func(timeout time.Duration) (connected int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range probes {
			wg.Go(func() {
				r, err := n.Probe(context.Background(), a, tg, timeout)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if r.Connected {
					connected++
				}
			})
		}
		wg.Wait()
		return connected
	}
	// A rule that looks at conntrack turns conntrack on in b's namespace,
	// as kube-fence's table does on a node; it drops nothing yet.
	nft := testenv.RequireBinary(t, "nft", "nftables")
	if out, err := b.Command(nft, "add table inet t; add chain inet t in { type filter hook input priority 0; }; add rule inet t in ct state new counter"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	if got := run(2 * time.Second); got != probes {
		t.Fatalf("%d of %d probes connected before the drop rule, want all", got, probes)
	}
	if out, err := b.Command(nft, "add rule inet t in ct state new meta l4proto udp drop"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	if got := run(300 * time.Millisecond); got != 0 {
		t.Errorf("%d of %d probes connected through a rule dropping new UDP flows: they reused an established flow", got, probes)
	}
}
