package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestScanNamespaceErrors: a path that is not a network namespace is an
// error naming it, never a scan of the caller's own namespace; an error in
// the namespace reaches the caller (the doctor's own namespace type used to
// drop it when leaving failed, and Scan dropped the one from entering).
func TestScanNamespaceErrors(t *testing.T) {
	testenv.RequireRoot(t)
	file := filepath.Join(t.TempDir(), "not-a-namespace")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/proc/self/ns/user", file, "/nonexistent/netns"} {
		_, err := Scan(context.Background(), Options{NetnsPath: path, SkipToolchain: true})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Scan(%s): %v, want an error naming the path", path, err)
		}
	}
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	n, err := openNamespace(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	boom := errors.New("boom")
	if err := n.do(func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("do: %v, want boom", err)
	}
}
