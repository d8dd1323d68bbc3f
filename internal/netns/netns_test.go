package netns_test

import (
	"net"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

func TestNamespaceIsolationAndCommands(t *testing.T) {
	testenv.RequireRoot(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()

	// A listener made inside the namespace is not reachable from outside.
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if err := ns.Do(func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("dial inside namespace: %v", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		// The port might coincidentally be open on the host; check the
		// namespace really differs by its interfaces instead.
	}

	out, err := ns.Command("ip", "-o", "link")
	if err != nil {
		t.Fatalf("ip link in namespace: %v: %s", err, out)
	}
	if got := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; got != 1 {
		t.Errorf("new namespace has %d links, want only lo:\n%s", got, out)
	}
	if err := ns.WriteSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := ns.ReadSysctl("net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Errorf("ip_forward in namespace = %q, %v; want 1", v, err)
	}
}
