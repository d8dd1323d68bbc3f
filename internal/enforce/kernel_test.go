package enforce

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestPipelineFollowsChangesInTheKernel sends random changes to a synthetic
// cluster through a pipeline into a real kernel: each sync's read back of
// what its transaction changed, and every fourth time a full read back,
// must find the kernel's table equal to the desired one.
func TestPipelineFollowsChangesInTheKernel(t *testing.T) {
	ns := testenv.NetNS(t)
	cfg := synth.Config{Pods: 2000, Policies: 200, Nodes: 10, Namespaces: 20, PodsOnNode: 110, Seed: 21}
	s := synth.Generate(cfg)
	cfg.Seed = 22
	pool := synth.Generate(cfg)
	node := synth.NodeName(0)
	p, err := Open(node, policy.Options{DefaultDenyUnknown: true}, kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Load(s)
	rnd := rand.New(rand.NewPCG(1, 2))
	for step := range 41 {
		what := "first sync"
		if step > 0 {
			what = fmt.Sprintf("step %d (%s)", step, synth.RandomChange(rnd, s, pool, node, step, p))
		}
		sy, err := p.Sync()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if sy.Check != nil && len(sy.Check.Differences) > 0 {
			t.Fatalf("%s: read back after apply: %s", what, strings.Join(sy.Check.Differences, "; "))
		}
		if step%4 == 1 { // the full read back is slow at this size
			chk, err := p.Verify()
			if err != nil {
				t.Fatalf("%s: verify: %v", what, err)
			}
			if len(chk.Differences) > 0 {
				t.Fatalf("%s: full read back: %s", what, strings.Join(chk.Differences, "; "))
			}
		}
	}
}
