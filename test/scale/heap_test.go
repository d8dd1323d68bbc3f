package scale

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// Consumer is a function or a package and the live heap its allocations
// hold, in MiB.
type Consumer struct {
	Name string
	MiB  float64
}

// heapProfile fetches the agent's heap profile (after a GC, so it holds live
// objects only) from its --profiling endpoint on the metrics listener, and
// writes it to dir/heap.pprof.
func heapProfile(ctx context.Context, cp *framework.ControlPlane, addr, dir string) (string, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: framework.NSDialer(cp.NS), DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("heap profile: %s/debug/pprof/heap answered %s (is --profiling on?)", addr, resp.Status)
	}
	file := filepath.Join(dir, "heap.pprof")
	f, err := os.Create(file)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return "", fmt.Errorf("heap profile: %w", err)
	}
	return file, f.Close()
}

// topConsumers runs `go tool pprof -top` on the heap profile (no dependency
// for what the toolchain does) and returns the live heap by allocating
// function, biggest first, and the same summed by package.
func topConsumers(file string) (funcs, pkgs []Consumer, err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, nil, fmt.Errorf("go tool pprof reads the heap profile, and no go binary is on PATH: %w", err)
	}
	// Every node, not the default top few, so the sums by package are whole.
	out, err := exec.Command(goBin, "tool", "pprof", "-top", "-sample_index=inuse_space", "-unit=MB",
		"-nodecount=100000", "-nodefraction=0", file).CombinedOutput()
	if err != nil {
		return nil, nil, fmt.Errorf("go tool pprof -top %s: %w: %s", file, err, out)
	}
	funcs, err = parseTop(string(out))
	if err != nil {
		return nil, nil, err
	}
	byPkg := map[string]float64{}
	for _, c := range funcs {
		byPkg[packageOf(c.Name)] += c.MiB
	}
	for name, mib := range byPkg {
		pkgs = append(pkgs, Consumer{name, mib})
	}
	order := func(a, b Consumer) int { return cmp.Or(cmp.Compare(b.MiB, a.MiB), strings.Compare(a.Name, b.Name)) }
	slices.SortFunc(funcs, order)
	slices.SortFunc(pkgs, order)
	return funcs, pkgs, nil
}

// parseTop reads the flat column of `pprof -top -unit=MB` lines such as
//
//	12.50MB 25.00% 25.00%    13MB 26.00%  k8s.io/client-go/tools/cache.(*threadSafeMap).Add
//
// and skips functions that allocated nothing themselves.
func parseTop(out string) ([]Consumer, error) {
	var cs []Consumer
	table := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 5 && fields[0] == "flat" {
			table = true
			continue
		}
		if !table || len(fields) < 6 {
			continue
		}
		flat := strings.TrimSuffix(fields[0], "MB")
		mb, err := strconv.ParseFloat(flat, 64)
		if err != nil {
			return nil, fmt.Errorf("pprof -top line %q: flat %q is not MB", sc.Text(), fields[0])
		}
		if mb > 0 {
			cs = append(cs, Consumer{strings.Join(fields[5:], " "), mb}) // pprof's MB is 2^20 bytes
		}
	}
	if !table {
		return nil, fmt.Errorf("pprof -top printed no table:\n%s", out)
	}
	return cs, nil
}

// packageOf returns the import path of a pprof function name: what comes
// before the first dot after the last slash, ignoring type arguments (they
// may hold slashes and dots of their own).
func packageOf(fn string) string {
	fn = strings.TrimSuffix(fn, " (inline)")
	if i := strings.IndexByte(fn, '['); i >= 0 {
		fn = fn[:i]
	}
	slash := strings.LastIndexByte(fn, '/') + 1
	if dot := strings.IndexByte(fn[slash:], '.'); dot >= 0 {
		return fn[:slash+dot]
	}
	return fn
}

func TestPackageOf(t *testing.T) {
	for _, c := range []struct{ fn, want string }{
		{"k8s.io/client-go/tools/cache.(*threadSafeMap).Add", "k8s.io/client-go/tools/cache"},
		{"runtime.malg", "runtime"},
		{"github.com/kube-fence/kube-fence/internal/policy.(*Compiler).index.func1", "github.com/kube-fence/kube-fence/internal/policy"},
		{"slices.Grow[go.shape.[]github.com/x/y.T] (inline)", "slices"},
		{"k8s.io/apimachinery/pkg/util/sets.Set[go.shape.string].Insert", "k8s.io/apimachinery/pkg/util/sets"},
		{"encoding/json.(*decodeState).object", "encoding/json"},
	} {
		if got := packageOf(c.fn); got != c.want {
			t.Errorf("packageOf(%q) = %q, want %q", c.fn, got, c.want)
		}
	}
}

func TestParseTop(t *testing.T) {
	out := `File: kube-fence
Type: inuse_space
Showing nodes accounting for 20MB, 100% of 20MB total
      flat  flat%   sum%        cum   cum%
   12.50MB 62.50% 62.50%    12.50MB 62.50%  k8s.io/client-go/tools/cache.(*threadSafeMap).Add
    7.50MB 37.50%   100%     7.50MB 37.50%  slices.Grow[go.shape.int] (inline)
         0     0%   100%       20MB   100%  main.main
`
	got, err := parseTop(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Consumer{{"k8s.io/client-go/tools/cache.(*threadSafeMap).Add", 12.5}, {"slices.Grow[go.shape.int] (inline)", 7.5}}
	if !slices.Equal(got, want) {
		t.Errorf("parseTop = %v, want %v", got, want)
	}
	if _, err := parseTop("no table here"); err == nil {
		t.Error("parseTop of text without a table: no error")
	}
}
