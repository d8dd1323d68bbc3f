package framework

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/testenv"
)

const modulePath = "github.com/kube-fence/kube-fence"

// Environment variables that override where the framework finds things.
const (
	// EnvAPIServer names a kube-apiserver binary to use instead of the one
	// hack/build-kube-apiserver.sh installs.
	EnvAPIServer = "KUBE_FENCE_KUBE_APISERVER"
	// EnvArtifacts names a directory that keeps process logs after the test;
	// without it they live in the test's temporary directory.
	EnvArtifacts = "KUBE_FENCE_E2E_ARTIFACTS"
)

// RepoRoot returns the root of the kube-fence checkout by walking up from the
// working directory (a test's is its package directory) to the go.mod that
// declares the module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no go.mod declaring %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func isModuleRoot(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

// RepoPath returns rel resolved against the repository root, failing the test
// when the root cannot be found.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}

// APIServerBinary returns the kube-apiserver to run and fails the test,
// saying how to build it, when it is missing.
func APIServerBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv(EnvAPIServer)
	if p == "" {
		p = RepoPath(t, "_output/bin/kube-apiserver")
	}
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("e2e tests need a kube-apiserver binary at %s, which is missing or not executable: "+
			"run hack/build-kube-apiserver.sh (it builds the pinned release from the Go module proxy, "+
			"a few minutes the first time) or set %s", p, EnvAPIServer)
	}
	return p
}

// EtcdBinary returns Debian's etcd and fails the test when it is missing.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	return testenv.RequireBinary(t, "etcd", "etcd-server")
}

// logDir returns where process logs go: a per-test directory under
// $KUBE_FENCE_E2E_ARTIFACTS when set, so they survive the test, otherwise
// under the test's own temporary directory.
func logDir(t testing.TB, tmp string) (string, error) {
	dir := filepath.Join(tmp, "logs")
	if a := os.Getenv(EnvArtifacts); a != "" {
		dir = filepath.Join(a, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create log directory: %w", err)
	}
	return dir, nil
}
