package conformance

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kube-fence/kube-fence/internal/conformance"
)

// results collects what the suites saw, for -conformance.report.
var results = &recorder{}

type caseResult struct {
	Variant, Group, Name string
	V4, V6               bool
	Probes, Rechecked    int
	Duration             time.Duration
}

type genRun struct {
	Variant  string
	Mode     string
	Cases    int
	Steps    int
	Probes   int
	Failed   int
	Recheck  int
	Tags     map[string]int
	Duration time.Duration
}

type recorder struct {
	mu    sync.Mutex
	cases []caseResult
	gen   []genRun
}

func (r *recorder) addCase(c caseResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cases = append(r.cases, c)
}

func (r *recorder) addGen(g genRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen = append(r.gen, g)
}

func mark(ok bool) string {
	if ok {
		return "pass"
	}
	return "**FAIL**"
}

// markdown writes the upstream table (one row per case, one column per
// variant and family), then the generated runs and their dimension totals.
func (r *recorder) markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- written by `go test ./test/conformance -conformance.report=FILE` on %s -->\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	var variants []string
	type row struct{ group, name string }
	var rows []row
	cells := map[row]map[string]caseResult{}
	for _, c := range r.cases {
		if !slices.Contains(variants, c.Variant) {
			variants = append(variants, c.Variant)
		}
		k := row{c.Group, c.Name}
		if cells[k] == nil {
			cells[k] = map[string]caseResult{}
			rows = append(rows, k)
		}
		cells[k][c.Variant] = c
	}
	if len(rows) > 0 {
		b.WriteString("### Upstream and extra cases\n\n| # | group | case |")
		for _, v := range variants {
			fmt.Fprintf(&b, " %s IPv4 | %s IPv6 |", v, v)
		}
		b.WriteString("\n|---|---|---|" + strings.Repeat("---|---|", len(variants)) + "\n")
		pass := map[string]int{}
		for i, k := range rows {
			fmt.Fprintf(&b, "| %d | %s | %s |", i+1, k.group, k.name)
			for _, v := range variants {
				c, ok := cells[k][v]
				if !ok {
					b.WriteString(" - | - |")
					continue
				}
				fmt.Fprintf(&b, " %s | %s |", mark(c.V4), mark(c.V6))
				if c.V4 {
					pass[v+"4"]++
				}
				if c.V6 {
					pass[v+"6"]++
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("| | | **passed** |")
		for _, v := range variants {
			fmt.Fprintf(&b, " %d/%d | %d/%d |", pass[v+"4"], len(rows), pass[v+"6"], len(rows))
		}
		b.WriteString("\n\n")
		for _, v := range variants {
			var d time.Duration
			probes, again := 0, 0
			for _, k := range rows {
				d += cells[k][v].Duration
				probes += cells[k][v].Probes
				again += cells[k][v].Rechecked
			}
			fmt.Fprintf(&b, "- %s: %d probes in %v; %d probed again after a late answer.\n", v, probes, d.Round(time.Second), again)
		}
		b.WriteString("\n")
	}
	if len(r.gen) > 0 {
		b.WriteString("### Generated cases\n\n| layout | mode | cases | steps | probes | probed again | mismatching cases | time |\n|---|---|---|---|---|---|---|---|\n")
		for _, g := range r.gen {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %v |\n", g.Variant, g.Mode, g.Cases, g.Steps, g.Probes, g.Recheck, g.Failed, g.Duration.Round(time.Second))
		}
		b.WriteString("\nCases per dimension value (one case counts once per value it uses):\n\n| dimension | value |")
		for _, g := range r.gen {
			fmt.Fprintf(&b, " %s, %s |", g.Variant, g.Mode)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("---|", len(r.gen)) + "\n")
		for _, dim := range slices.Sorted(func(yield func(string) bool) {
			for d := range conformance.Dimensions {
				if !yield(d) {
					return
				}
			}
		}) {
			for _, val := range conformance.Dimensions[dim] {
				fmt.Fprintf(&b, "| %s | %s |", dim, val)
				for _, g := range r.gen {
					fmt.Fprintf(&b, " %d |", g.Tags[dim+"="+val])
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}
