package framework

import (
	"debug/elf"
	"errors"
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

// BuildScript builds kube-fence as the container image does (deploy/Dockerfile
// runs it too): static, stripped, version stamped.
const BuildScript = "hack/build-static.sh"

// KubeFenceBinary builds cmd/kube-fence from this checkout once per test
// binary with BuildScript, into _output/e2e/, checks that the result is
// static, and returns its path: the agent under test is the code under test,
// built the way the image ships it. Go's build cache makes repeated builds
// take about a second; a cold one compiles the dependencies once more with
// CGO_ENABLED=0 (minutes on 2 cores, which is why hack/ci-deps.sh warms it).
func KubeFenceBinary(t testing.TB) string {
	t.Helper()
	kubeFence.once.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			kubeFence.err = err
			return
		}
		out := filepath.Join(root, "_output", "e2e", "kube-fence")
		cmd := exec.Command(filepath.Join(root, BuildScript), out)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "VERSION=e2e")
		if b, err := cmd.CombinedOutput(); err != nil {
			kubeFence.err = fmt.Errorf("%s: %w\n%s", BuildScript, err, b)
			return
		}
		if err := CheckStatic(out); err != nil {
			kubeFence.err = err
			return
		}
		kubeFence.path = out
	})
	if kubeFence.err != nil {
		t.Fatal(kubeFence.err)
	}
	return kubeFence.path
}

// CheckStatic returns an error unless path is a statically linked ELF
// executable: no program interpreter (the dynamic loader) and no shared
// libraries needed, so it runs on an image without libc such as
// distroless/static or scratch.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("check %s is static: %w", path, err)
	}
	defer f.Close()
	var errs []error
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			errs = append(errs, errors.New("it has a program interpreter (PT_INTERP)"))
		case elf.PT_DYNAMIC:
			errs = append(errs, errors.New("it has a dynamic section (PT_DYNAMIC)"))
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		errs = append(errs, fmt.Errorf("it needs shared libraries %v", libs))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s is not a static executable: %w", path, err)
	}
	return nil
}
