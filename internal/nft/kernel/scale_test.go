package kernel

import (
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"

	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestApplyAtScale applies the table of a node of a 10k-pod, 1k-policy
// synthetic cluster (about 1,600 rules and 71,500 set elements) in one
// transaction and reads it back. It guards the things that only break at
// scale: the batch exceeding socket buffers, the kernel's replies (echoes of
// new rules) overflowing the receive buffer, element messages too big for
// one netlink attribute. It asserts correctness only, never time.
func TestApplyAtScale(t *testing.T) {
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipAuto)
	s := synth.Generate(synth.Config{Pods: 10000, Policies: 1000, Nodes: 100, Namespaces: 100, PodsOnNode: 110, Seed: 1})
	want := nft.Render(policy.Compile(s, synth.NodeName(0), policy.Options{DefaultDenyUnknown: true}))
	if _, rules, _, elems := want.Counts(); rules < 900 || elems < 60000 {
		t.Fatalf("the synthetic table has %d rules and %d elements; the test needs at least 900 and 60000", rules, elems)
	}
	if _, err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	requireNoDiff(t, c, want, "after applying the whole table")
}
