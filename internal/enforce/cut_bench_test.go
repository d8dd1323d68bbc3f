package enforce

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// BenchmarkSyncCut measures, in a real kernel, the sync of a change that
// may narrow (a pod of the node deleted, then added again) with 1,000 pods
// (110 on the node) and 200 policies, keeping connections or cutting them
// with `entries` conntrack entries in the namespace (allowed ones: the
// dump and the judging, no deletion). ns/op is Sync, which returns after
// the commit and its read back; sync+cut-ms is Sync plus the wait for the
// cut it asked for, what a sync took when the cut ran inside it.
func BenchmarkSyncCut(b *testing.B) {
	for _, bc := range []struct {
		cut     bool
		entries int
	}{{false, 0}, {true, 100}, {true, 5000}} {
		name := "keep"
		if bc.cut {
			name = fmt.Sprintf("cut/entries=%d", bc.entries)
		}
		b.Run(name, func(b *testing.B) {
			ns := testenv.NetNS(b)
			s := synth.Generate(synth.Config{Pods: 1000, Policies: 200, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 21})
			node := synth.NodeName(0)
			p, err := Open(node, policy.Options{DefaultDenyUnknown: true}, kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipAuto})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			if bc.cut {
				c, err := OpenCutter(ns.FD())
				if err != nil {
					b.Fatal(err)
				}
				p.CutConnections(c)
			}
			p.Load(s)
			if _, err := p.Sync(); err != nil { // the table turns conntrack on
				b.Fatal(err)
			}
			fillConntrack(b, ns.FD(), bc.entries)
			pod := s.Pods[0]
			for _, q := range s.Pods {
				if q.NodeName == node {
					pod = q
					break
				}
			}
			var withCut time.Duration
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					p.DeletePod(pod.Key())
				} else {
					p.SetPod(pod)
				}
				start := time.Now()
				if s, err := p.Sync(); err != nil || s.Result.Messages == 0 {
					b.Fatalf("sync %d: err=%v, want a commit", i, err)
				}
				b.StopTimer()
				if _, err := p.WaitCut(); err != nil {
					b.Fatal(err)
				}
				withCut += time.Since(start)
				b.StartTimer()
			}
			b.ReportMetric(float64(withCut.Microseconds())/1000/float64(b.N), "sync+cut-ms")
		})
	}
}

// fillConntrack creates n established TCP entries between addresses of no
// pod, which every plan allows.
func fillConntrack(b *testing.B, netnsFD, n int) {
	if n == 0 {
		return
	}
	c, err := ct.Dial(&netlink.Config{NetNS: netnsFD})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dst := netip.MustParseAddr("10.99.0.2")
	for i := range n {
		src := netip.AddrFrom4([4]byte{10, 98, byte(i >> 8), byte(i)})
		f := ct.NewFlow(uint8(plan.TCP), 0, src, dst, uint16(10000+i%50000), 8080, 600, 0)
		f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: 3} // established
		if err := c.Create(f); err != nil {
			b.Fatalf("create conntrack entry %d: %v", i, err)
		}
	}
}
