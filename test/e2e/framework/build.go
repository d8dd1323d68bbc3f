package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var kubeFence struct {
	once sync.Once
	path string
	err  error
}

// KubeFenceBinary builds cmd/kube-fence from this checkout once per test
// binary, into _output/e2e/, and returns its path, so the agent under test
// is the code under test. Go's build cache makes repeated builds cheap.
func KubeFenceBinary(t testing.TB) string {
	t.Helper()
	kubeFence.once.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			kubeFence.err = err
			return
		}
		out := filepath.Join(root, "_output", "e2e", "kube-fence")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/kube-fence")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			kubeFence.err = fmt.Errorf("go build ./cmd/kube-fence: %w\n%s", err, b)
			return
		}
		kubeFence.path = out
	})
	if kubeFence.err != nil {
		t.Fatal(kubeFence.err)
	}
	return kubeFence.path
}
