// Package testenv states what a test needs from the machine and fails loudly
// when it is missing: a test here never skips itself silently.
package testenv

import (
	"github.com/kube-fence/kube-fence/internal/netns"

	"os"
	"os/exec"
	"testing"
)

// RequireRoot fails the test unless it runs as root, which real-kernel tests
// need to create network namespaces and program nftables.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test uses the real kernel (network namespaces, nftables) and needs root: run `go test` as root, as .ci/run does")
	}
}

// RequireBinary fails the test unless name is on PATH, naming the Debian
// package that provides it, and returns its path.
func RequireBinary(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("this test needs %s on PATH (Debian package %s; .ci/run installs it): %v", name, debianPackage, err)
	}
	return p
}

// NetNS returns a throwaway network namespace for the test, removed when the
// test ends, whether it passed or not. It fails the test without root.
func NetNS(t testing.TB) *netns.NS {
	t.Helper()
	RequireRoot(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("create a network namespace for the test: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("remove the test's network namespace: %v", err)
		}
	})
	return ns
}
