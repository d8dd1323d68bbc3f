package toolchain

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Binary is one iptables executable and what it says it is.
type Binary struct {
	Path       string `json:"path"`
	ResolvesTo string `json:"resolves_to,omitempty"`
	Source     string `json:"source"` // "PATH" or "k3s"
	Version    string `json:"version,omitempty"`
	Backend    string `json:"backend,omitempty"` // "nf_tables" or "legacy"
	Error      string `json:"error,omitempty"`
}

// Options locate the filesystem to inspect; tests point Root at a
// temporary directory.
type Options struct {
	Root string   // "/" by default
	Path []string // directories searched; $PATH by default
	// Run runs `path --version`; the default execs it with a timeout.
	Run func(ctx context.Context, path string) (string, error)
}

var names = []string{"iptables", "iptables-nft", "iptables-legacy", "ip6tables", "ip6tables-nft", "ip6tables-legacy"}

// K3sGlob is where K3s unpacks its bundled userspace, relative to Root.
const K3sGlob = "var/lib/rancher/k3s/data/*/bin/aux"

func (o *Options) defaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Path == nil {
		o.Path = filepath.SplitList(os.Getenv("PATH"))
	}
	if o.Run == nil {
		o.Run = runVersion
	}
}

func runVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	return string(out), err
}

var versionRE = regexp.MustCompile(`v(\d+\.\d+\.\d+)(?:\s*\(([a-z_]+)\))?`)

// ParseVersion reads "iptables v1.8.9 (nf_tables)". iptables before 1.8 and
// legacy builds may print no backend; "legacy" is then assumed.
func ParseVersion(out string) (version, backend string) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", ""
	}
	backend = m[2]
	if backend == "" {
		backend = "legacy"
	}
	return m[1], backend
}

// FindBinaries lists every iptables binary found, PATH entries first.
func FindBinaries(ctx context.Context, o Options) []Binary {
	o.defaults()
	var found []Binary
	seen := map[string]bool{}
	add := func(p, source string) {
		// /sbin and /usr/sbin are often one directory: count a binary once.
		key := p
		if d, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			key = filepath.Join(d, filepath.Base(p))
		}
		if seen[key] {
			return
		}
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return
		}
		seen[key] = true
		b := Binary{Path: p, Source: source}
		if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
			b.ResolvesTo = r
		}
		out, err := o.Run(ctx, p)
		b.Version, b.Backend = ParseVersion(out)
		if b.Version == "" {
			msg := strings.TrimSpace(out)
			if err != nil {
				msg = strings.TrimSpace(err.Error() + " " + msg)
			}
			b.Error = "could not read version: " + msg
		}
		found = append(found, b)
	}
	for _, dir := range o.Path {
		if dir == "" {
			continue
		}
		for _, n := range names {
			add(filepath.Join(rooted(o.Root, dir), n), "PATH")
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(o.Root, K3sGlob))
	sort.Strings(dirs)
	for _, dir := range dirs {
		for _, n := range names {
			add(filepath.Join(dir, n), "k3s")
		}
	}
	return found
}

func rooted(root, dir string) string {
	if root == "/" {
		return dir
	}
	return filepath.Join(root, dir)
}
