package kernel

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/plan/plantest"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestTieredTableLoadsAndReadsBack applies a table with ClusterNetworkPolicy
// rules (port sets, the input hook, pass chains), reads it back exactly, and
// checks that nft -f of its text gives the same table: the hand-built
// expressions are the ones nft makes.
func TestTieredTableLoadsAndReadsBack(t *testing.T) {
	testenv.RequireBinary(t, "nft", "nftables")
	want := nft.Render(plantest.Tiered())
	for _, name := range []string{"input", "egress-e000000000002-pass", "egress-e000000000003"} {
		if want.Chains[name] == nil {
			t.Fatalf("rendered table has no chain %s:\n%s", name, nft.Text(want))
		}
	}
	ns := testenv.NetNS(t)
	c := openConn(t, ns, OwnershipAuto)
	if _, err := c.Sync(want); err != nil {
		t.Fatalf("sync: %v\n%s", err, nft.Text(want))
	}
	requireNoDiff(t, c, want, "after sync")

	ns2 := testenv.NetNS(t)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft.Text(want))
	if err := ns2.Do(func() error {
		if b, err := cmd.CombinedOutput(); err != nil {
			return errors.New(string(b))
		}
		return nil
	}); err != nil {
		t.Fatalf("nft -f of the rendered text: %v\n%s", err, nft.Text(want))
	}
	requireNoDiff(t, openConn(t, ns2, OwnershipOff), want, "table loaded by nft -f")
}
