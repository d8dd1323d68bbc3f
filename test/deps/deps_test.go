package deps

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/kube-fence/kube-fence/"

// rule forbids the packages matching from to depend on the packages
// matching any of to: through any chain of imports when deep is set, by
// their own import lines otherwise.
type rule struct {
	name string
	from []string // import path prefixes, relative to the module
	deep bool
	to   []string // import path prefixes, absolute or relative to the module
	// exact limits from to the packages named, not those below them.
	exact bool
	// only, when set, lists the only prefixes from may depend on besides
	// the standard library; to is then ignored.
	only []string
}

// rules are the ones docs/design.md lists under "Dependency rules".
var rules = []rule{
	{
		name: "the plan imports only the standard library and the address sets",
		from: []string{"internal/plan"}, deep: true,
		only: []string{"internal/plan", "internal/addrset"},
	},
	{
		name: "the dataplane and the plan import nothing of Kubernetes",
		from: []string{"internal/nft", "internal/plan", "internal/addrset"}, deep: true,
		to: []string{"k8s.io/", "sigs.k8s.io/"},
	},
	{
		name: "the nft model does no I/O: it leaves the netlink side to internal/nft/kernel",
		from: []string{"internal/nft"}, exact: true, deep: true,
		to: []string{"internal/nft/kernel", "internal/nlrules", "github.com/vishvananda/", "github.com/florianl/go-nflog"},
	},
	{
		name: "the policy core imports no netlink, nftables or client-go",
		from: []string{"internal/policy", "internal/cluster"}, deep: true,
		to: []string{"github.com/google/nftables", "github.com/mdlayher/netlink", "github.com/vishvananda/",
			"k8s.io/client-go", "internal/nft", "internal/nlrules", "internal/netns"},
	},
	{
		name: "cmd/ only wires: no netlink or nftables library, no plan, no fake",
		from: []string{"cmd/"},
		to: []string{"github.com/google/nftables", "github.com/mdlayher/netlink", "github.com/vishvananda/",
			"internal/plan", "internal/nft/nfttest"},
	},
	{
		name: "the doctor does not import the policy core",
		from: []string{"internal/doctor"}, deep: true,
		to: []string{"internal/policy", "internal/plan", "internal/enforce", "internal/agent"},
	},
}

// pkg is one package of the module as go list sees it.
type pkg struct {
	path    string
	imports []string // direct
	deps    []string // all, transitively
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goTool, "list", "-test=false", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", module+"...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 3 {
			t.Fatalf("go list: unexpected line %q", sc.Text())
		}
		pkgs = append(pkgs, pkg{path: f[0], imports: strings.Fields(f[1]), deps: strings.Fields(f[2])})
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages; is the test running inside the module?", len(pkgs))
	}
	return pkgs
}

// matches reports whether path is one of prefixes, or below one of them.
func matches(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(p, "internal/") || strings.HasPrefix(p, "cmd/") {
			p = module + p
		}
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// standard reports whether path belongs to the standard library, whose
// import paths have no dot in their first element.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// selects reports whether the rule applies to the package path.
func (r rule) selects(path string) bool {
	if r.exact {
		for _, f := range r.from {
			if path == module+f {
				return true
			}
		}
		return false
	}
	return matches(path, r.from)
}

// violations returns "from -> dep" for every dependency r forbids.
func (r rule) violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		if !r.selects(p.path) {
			continue
		}
		deps := p.imports
		if r.deep {
			deps = p.deps
		}
		for _, d := range deps {
			bad := matches(d, r.to)
			if r.only != nil {
				bad = !standard(d) && !matches(d, r.only)
			}
			if bad {
				out = append(out, strings.TrimPrefix(p.path, module)+" -> "+strings.TrimPrefix(d, module))
			}
		}
	}
	return out
}

func TestDependencyRules(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			from := 0
			for _, p := range pkgs {
				if r.selects(p.path) {
					from++
				}
			}
			if from == 0 {
				t.Fatalf("no package matches %v: the rule checks nothing", r.from)
			}
			for _, v := range r.violations(pkgs) {
				t.Errorf("forbidden dependency: %s", v)
			}
		})
	}
}
