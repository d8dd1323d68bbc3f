package bootstrap

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/testenv"
)

// nobody is the user the bootstrap runs as: the download and unpacking must
// not need root.
const nobody = "65534"

// repoRoot is the checkout holding hack/lib.sh.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "hack", "lib.sh")); err != nil {
		t.Fatalf("hack/lib.sh not found from the test's directory: %v", err)
	}
	return root
}

// pinned returns the toolchain version pinned in hack/go-toolchain.
func pinned(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "hack", "go-toolchain"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^version=(go[0-9.]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("hack/go-toolchain has no version= line")
	}
	return string(m[1])
}

// sandbox is a directory owned by nobody, removed after the test.
func sandbox(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kube-fence-bootstrap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}

// machine describes the machine the bootstrap runs on: the PATH it sees
// and the Go at /usr/local/go, if any.
type machine struct {
	path     string
	localGo  string // a release for a fake /usr/local/go/bin/go; "" for none
	extraEnv []string
}

// run runs script after sourcing hack/lib.sh, as nobody, in a private mount
// namespace whose /usr/local is an empty tmpfs (so the machine's own Go there
// is hidden, as on a fresh Debian 12 machine, and never touched), with only
// PATH, HOME, the install directory and m.extraEnv in its environment.
func run(t *testing.T, root, home string, m machine, script string) (string, error) {
	t.Helper()
	setup := "mount -t tmpfs tmpfs /usr/local"
	if m.localGo != "" {
		setup += ` && mkdir -p /usr/local/go/bin && printf '%s' "$FAKE" > /usr/local/go/bin/go && chmod 755 /usr/local/go/bin/go`
	}
	env := []string{"PATH=" + m.path, "HOME=" + home, "KUBE_FENCE_GO_DIR=" + filepath.Join(home, "toolchain")}
	if p := os.Getenv("GOPROXY"); p != "" {
		env = append(env, "GOPROXY="+p)
	}
	env = append(env, m.extraEnv...)
	setup += ` && exec setpriv --reuid=` + nobody + ` --regid=` + nobody + ` --clear-groups env -i "$@"`
	args := []string{"--mount", "--propagation", "private", "sh", "-c", setup, "sh"}
	args = append(args, env...)
	args = append(args, "bash", "-c", "set -e; . hack/lib.sh; "+script)
	cmd := exec.Command("unshare", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "FAKE="+fakeGoScript(m.localGo))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const ensureAndReport = `ensure_go; echo "chosen: $(command -v go)"; go version`

// fakeGoScript is a `go` that claims to be release v.
func fakeGoScript(v string) string {
	return "#!/bin/sh\nif [ \"$1\" = env ]; then echo " + v + "; else echo \"go version " + v + " linux/amd64\"; fi\n"
}

// fakeGo writes a fake `go` of release v into dir.
func fakeGo(t *testing.T, dir, v string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "go")
	if err := os.WriteFile(p, []byte(fakeGoScript(v)), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const basePath = "/usr/bin:/bin"

func TestEnsureGo(t *testing.T) {
	testenv.RequireRoot(t) // for the private mount namespace; the bootstrap itself runs as nobody
	testenv.RequireBinary(t, "setpriv", "util-linux")
	testenv.RequireBinary(t, "unshare", "util-linux")
	testenv.RequireBinary(t, "unzip", "unzip")
	root := repoRoot(t)
	want := pinned(t, root)
	if _, err := os.Stat("/usr/bin/go"); err == nil {
		t.Fatal("/usr/bin/go exists, so PATH=" + basePath + " is not a machine without Go")
	}
	home := sandbox(t)
	installed := filepath.Join(home, "toolchain", "bin", "go")

	t.Run("no Go anywhere installs the pinned toolchain", func(t *testing.T) {
		out, err := run(t, root, home, machine{path: basePath}, ensureAndReport)
		if err != nil {
			t.Fatalf("ensure_go failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "chosen: "+installed+"\n") || !strings.Contains(out, "go version "+want+" ") {
			t.Fatalf("want %s from %s:\n%s", want, installed, out)
		}
	})
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("nothing was installed at %s: %v", installed, err)
	}

	t.Run("a Go new enough on PATH is used and left alone", func(t *testing.T) {
		bin := filepath.Join(home, "user-go", "bin")
		fake := fakeGo(t, bin, "go1.99.0")
		out, err := run(t, root, home, machine{path: bin + ":" + basePath, localGo: "go1.19.8"}, ensureAndReport)
		if err != nil {
			t.Fatalf("ensure_go failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "chosen: "+fake+"\n") {
			t.Fatalf("the user's Go was not chosen:\n%s", out)
		}
		if got, _ := os.ReadFile(fake); string(got) != fakeGoScript("go1.99.0") {
			t.Fatal("the user's Go was changed")
		}
	})

	t.Run("a Go new enough at /usr/local/go is used", func(t *testing.T) {
		out, err := run(t, root, home, machine{path: basePath, localGo: "go1.99.0"}, ensureAndReport)
		if err != nil {
			t.Fatalf("ensure_go failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "chosen: /usr/local/go/bin/go\n") {
			t.Fatalf("/usr/local/go was not chosen:\n%s", out)
		}
	})

	t.Run("Gos too old are kept and not used", func(t *testing.T) {
		bin := filepath.Join(home, "old-go", "bin")
		fake := fakeGo(t, bin, "go1.19.8")
		out, err := run(t, root, home, machine{path: bin + ":" + basePath, localGo: "go1.19.8"}, ensureAndReport)
		if err != nil {
			t.Fatalf("ensure_go failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "chosen: "+installed+"\n") {
			t.Fatalf("the project's Go was not chosen over Go 1.19:\n%s", out)
		}
		if got, _ := os.ReadFile(fake); string(got) != fakeGoScript("go1.19.8") {
			t.Fatal("the user's old Go was changed")
		}
	})

	t.Run("a zip with another checksum is refused and nothing is installed", func(t *testing.T) {
		h := sandbox(t)
		proxy := filepath.Join(h, "proxy")
		dir := filepath.Join(proxy, "golang.org", "toolchain", "@v")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			writeZip(t, filepath.Join(dir, "v0.0.1-"+want+".linux-"+arch+".zip"))
		}
		m := machine{path: basePath, extraEnv: []string{"GOPROXY=file://" + proxy}}
		out, err := run(t, root, h, m, ensureAndReport)
		if err == nil {
			t.Fatalf("ensure_go accepted a zip that is not the pinned one:\n%s", out)
		}
		if !strings.Contains(out, "SHA-256") {
			t.Fatalf("the refusal does not name the checksum:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(h, "toolchain")); !os.IsNotExist(err) {
			t.Fatalf("something was installed after the checksum failed: %v", err)
		}
	})
}

// writeZip writes a small, valid zip that is not the toolchain.
func writeZip(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := zip.NewWriter(f)
	e, err := w.Create("golang.org/toolchain/bin/go")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Write([]byte("#!/bin/sh\necho not go\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
