package nlrules

import (
	"context"
	"testing"
	"time"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kube-fence/kube-fence/internal/nftext"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

func TestDecodeKeepsWhatItCannotRead(t *testing.T) {
	if u, ok := (RawExpr{Name: "osf", Data: []byte{1, 2, 3, 4}}).Decode(unix.NFPROTO_IPV4).(*nftext.Undecoded); !ok || u.Name != "osf" || u.Err != nil {
		t.Errorf("unknown kind: %#v", u)
	}
	// A comment match whose info has the wrong size fails to parse.
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_MATCH_NAME, "comment")
	ae.Uint32(unix.NFTA_MATCH_REV, 0)
	ae.Bytes(unix.NFTA_MATCH_INFO, []byte{1, 2, 3, 4})
	data, _ := ae.Encode()
	if u, ok := (RawExpr{Name: "match", Data: data}).Decode(unix.NFPROTO_IPV4).(*nftext.Undecoded); !ok || u.Err == nil {
		t.Errorf("malformed match: %#v", u)
	}
	var _ expr.Any
	if _, ok := (RawExpr{Name: "ct", Data: []byte{0xff}}).Decode(unix.NFPROTO_IPV4).(*nftext.Undecoded); !ok {
		t.Error("truncated ct attributes must come back undecoded")
	}
}

func TestUserComment(t *testing.T) {
	ud := []byte{0, 6, 'h', 'e', 'l', 'l', 'o', 0}
	if got := UserComment(ud); got != "hello" {
		t.Errorf("got %q", got)
	}
	if UserComment([]byte{0, 9, 'x'}) != "" {
		t.Error("truncated user data must give no comment")
	}
}

// TestReadAndWatch reads a ruleset with expressions google/nftables cannot
// decode and sees a change notification.
func TestReadAndWatch(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "nft", "nftables")
	ns := testenv.NetNS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes, err := Changes(ctx, ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Command("nft", "add table ip t; add chain ip t c; add rule ip t c rt mtu 1400 ct original ip saddr 10.0.0.1 accept comment \"hi\""); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	select {
	case err := <-changes:
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no change notification within 3s")
	}
	c, err := Dial(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	rules := rs.ChainRules(unix.NFPROTO_IPV4, "t", "c")
	if len(rules) != 1 {
		t.Fatalf("rules: %+v", rs.Rules)
	}
	got := nftext.Rule(rules[0].Decoded(), nftext.Options{Family: unix.NFPROTO_IPV4})
	if got != "rt mtu 1400 ct original ip saddr 10.0.0.1 accept" || UserComment(rules[0].UserData) != "hi" {
		t.Errorf("rendered %q, comment %q", got, UserComment(rules[0].UserData))
	}
}
