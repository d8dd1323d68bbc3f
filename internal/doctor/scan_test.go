package doctor

import (
	"context"
	"testing"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestMixedBackends: rules in legacy xtables beside iptables-nft tables are
// reported, found through /proc/net/ip_tables_names of the namespace.
func TestMixedBackends(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables-legacy", "iptables")
	testenv.RequireBinary(t, "iptables", "iptables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if out, err := ns.Command("iptables", "-A", "FORWARD", "-j", "ACCEPT"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rep, err := Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.MixedBackends || rep.Problems() {
		t.Fatalf("nf_tables only: mixed=%v problems=%v legacy=%v", rep.MixedBackends, rep.Problems(), rep.Legacy.Tables)
	}
	if out, err := ns.Command("iptables-legacy", "-A", "INPUT", "-j", "ACCEPT"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rep, err = Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tb := range rep.Legacy.Tables {
		found = found || tb == "ip filter"
	}
	if !rep.MixedBackends || !found || !rep.Problems() {
		t.Errorf("with a legacy rule: mixed=%v legacy=%v", rep.MixedBackends, rep.Legacy.Tables)
	}
}
