package doctor

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/doctor/corpus"
	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

var sentinel = []string{"-m", "comment", "--comment", "sentinel", "-j", "ACCEPT"}

// outcome is what the real binary did, or what the doctor predicted.
type outcome struct {
	checkExit int
	checkErr  string
	listExit  int
	listErr   string
	saveExit  int
	saveErr   string
	omitted   bool
}

// firstLine returns the first line of output without iptables' prefixes.
func firstLine(out []byte) string {
	line := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	line = strings.TrimPrefix(line, "Error: ")
	if i := strings.Index(line, "(nf_tables): "); i >= 0 {
		line = line[i+len("(nf_tables): "):]
	}
	return line
}

func exitOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func realOutcome(ns *netns.NS, table, chain string) outcome {
	var o outcome
	out, err := ns.Command("iptables", append([]string{"-t", table, "-C", chain}, sentinel...)...)
	o.checkExit = exitOf(err)
	if o.checkExit != 0 {
		o.checkErr = firstLine(out)
	}
	out, err = ns.Command("iptables", "-t", table, "-S")
	o.listExit = exitOf(err)
	if o.listExit != 0 {
		o.listErr = firstLine(out)
	}
	out, err = ns.Command("iptables-save")
	o.saveExit = exitOf(err)
	if o.saveExit != 0 {
		o.saveErr = firstLine(out)
	}
	o.omitted = strings.Contains(string(out), fmt.Sprintf("# Table `%s' is incompatible, use 'nft' tool.", table))
	return o
}

func predicted(rep *Report, table, chain string) outcome {
	var o outcome
	for _, f := range rep.Findings {
		_ = f
	}
	// -C walks the chain in order; the first rule the decoder fails on ends it.
	first := -1
	for _, f := range rep.Findings {
		if f.Family == "ip" && f.Table == table && f.Chain == chain && f.IPTables["1.8.9"].Check.Exit == 3 {
			if first < 0 || f.Position < first {
				first = f.Position
				o.checkExit, o.checkErr = 3, f.IPTables["1.8.9"].Check.Error
			}
		}
	}
	for _, t := range rep.Tables {
		if t.Family != "ip" || t.Table != table {
			continue
		}
		r := t.Versions[string(iptmodel.V189)]
		o.listExit, o.listErr = r.List.Exit, r.List.Error
		o.saveExit, o.saveErr = r.Save.Exit, r.Save.Error
		o.omitted = r.Save.Outcome == "table omitted"
	}
	return o
}

func setupNS(t *testing.T) *netns.NS {
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	for _, a := range [][]string{
		append([]string{"-A", "FORWARD"}, sentinel...),
		append([]string{"-t", "nat", "-A", "POSTROUTING"}, sentinel...),
		append([]string{"-t", "nat", "-A", "PREROUTING"}, sentinel...),
		append([]string{"-t", "nat", "-A", "OUTPUT"}, sentinel...),
		append([]string{"-A", "OUTPUT"}, sentinel...),
	} {
		if out, err := ns.Command("iptables", a...); err != nil {
			t.Fatalf("iptables %v: %v: %s", a, err, out)
		}
	}
	if out, err := ns.Command("nft", "-f", "-", "-c"); err != nil && false {
		t.Fatal(out)
	}
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(corpus.Setup)
	var out []byte
	if err := ns.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("nft setup: %v: %s", err, out)
	}
	return ns
}

type caseResult struct {
	c             corpus.Case
	real, pred    outcome
	nftLine, ours string
	setupErr      string
}

func runCase(ns *netns.NS, c corpus.Case) caseResult {
	res := caseResult{c: c}
	if out, err := ns.Command("nft", "flush table ip filter; flush table ip nat"); err != nil {
		res.setupErr = fmt.Sprintf("flush: %v: %s", err, out)
		return res
	}
	if out, err := ns.Command("iptables", append([]string{"-t", c.Table, "-A", c.Chain}, sentinel...)...); err != nil {
		res.setupErr = fmt.Sprintf("sentinel: %v: %s", err, out)
		return res
	}
	var out []byte
	var err error
	if c.Nft != "" {
		out, err = ns.Command("nft", "insert rule ip "+c.Table+" "+c.Chain+" "+c.Nft)
	} else {
		out, err = ns.Command("iptables", append([]string{"-t", c.Table, "-I", c.Chain}, strings.Fields(c.Ipt)...)...)
	}
	if err != nil {
		res.setupErr = fmt.Sprintf("add rule: %v: %s", err, out)
		return res
	}
	rep, err := Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
	if err != nil {
		res.setupErr = "scan: " + err.Error()
		return res
	}
	res.pred = predicted(rep, c.Table, c.Chain)
	res.real = realOutcome(ns, c.Table, c.Chain)
	if c.Nft != "" {
		list, _ := ns.Command("nft", "list", "chain", "ip", c.Table, c.Chain)
		res.nftLine = firstRuleLine(string(list))
		res.ours = renderFirst(ns, c.Table, c.Chain)
	}
	return res
}

func firstRuleLine(list string) string {
	lines := strings.Split(list, "\n")
	for i, l := range lines {
		if strings.Contains(l, "hook ") && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}

// TestDifferentialIptables189 places every corpus rule before an
// iptables-written sentinel and checks that the doctor predicts exactly what
// the real iptables 1.8.9 does with -C, -S and iptables-save.
func TestDifferentialIptables189(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	out, _ := exec.Command("iptables", "--version").CombinedOutput()
	if !strings.Contains(string(out), "v1.8.9 (nf_tables)") {
		t.Fatalf("this test checks the model of iptables 1.8.9 (nf_tables); found %q", strings.TrimSpace(string(out)))
	}
	start := time.Now()
	const workers = 2
	cases := corpus.Cases
	results := make([]caseResult, len(cases))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		ns := setupNS(t)
		wg.Add(1)
		go func(w int, ns *netns.NS) {
			defer wg.Done()
			for i := w; i < len(cases); i += workers {
				results[i] = runCase(ns, cases[i])
			}
		}(w, ns)
	}
	wg.Wait()
	agree, renderSame, rendered, fatal, incompatible := 0, 0, 0, 0, 0
	for _, r := range results {
		name := r.c.Nft
		if name == "" {
			name = "iptables " + r.c.Ipt
		}
		if r.setupErr != "" {
			t.Errorf("%s %s [%s]: %s", r.c.Table, r.c.Chain, name, r.setupErr)
			continue
		}
		if r.real != r.pred {
			t.Errorf("%s %s [%s]:\n real      %+v\n predicted %+v", r.c.Table, r.c.Chain, name, r.real, r.pred)
		} else {
			agree++
		}
		if r.real.checkExit == 3 {
			fatal++
		}
		if r.real.listExit == 1 {
			incompatible++
		}
		if r.nftLine != "" {
			rendered++
			if r.nftLine == r.ours {
				renderSame++
			} else {
				t.Logf("render differs: nft %q, nftext %q", r.nftLine, r.ours)
			}
		}
	}
	t.Logf("corpus %d rules: doctor agrees with real iptables 1.8.9 on %d (-C exit 3 on %d, table incompatible on %d); nftext renders %d/%d exactly as nft list; %s",
		len(cases), agree, fatal, incompatible, renderSame, rendered, time.Since(start).Round(time.Millisecond))
	if len(cases) < 200 {
		t.Errorf("corpus has %d rules, want at least 200", len(cases))
	}
	if renderSame*10 < rendered*9 {
		t.Errorf("nftext matches nft list on only %d of %d rules, want 90%%", renderSame, rendered)
	}
}

// TestDifferentialForeignBaseChain: a base chain iptables did not create
// taints the table; the real -S and iptables-save warn and go on.
func TestDifferentialForeignBaseChain(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	ns := setupNS(t)
	if out, err := ns.Command("nft", "add chain ip filter foreign { type filter hook input priority 10; }"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rep, err := Scan(context.Background(), Options{NetnsPath: ns.Path(), SkipToolchain: true})
	if err != nil {
		t.Fatal(err)
	}
	var pred iptmodel.TableResult
	for _, tb := range rep.Tables {
		if tb.Table == "filter" {
			pred = tb.Versions["1.8.9"]
		}
	}
	out, err := ns.Command("iptables", "-t", "filter", "-S")
	first := strings.SplitN(string(out), "\n", 2)[0]
	if exitOf(err) != pred.List.Exit || !pred.Tainted || first != pred.Save.Line {
		t.Errorf("-S: exit %d, first line %q; predicted %+v", exitOf(err), first, pred)
	}
	save, err := ns.Command("iptables-save")
	if exitOf(err) != pred.Save.Exit || !strings.Contains(string(save), pred.Save.Line) {
		t.Errorf("iptables-save: exit %d\n%s\npredicted %+v", exitOf(err), save, pred.Save)
	}
	if len(rep.Notes) == 0 || !strings.Contains(strings.Join(rep.Notes, "\n"), "base chain foreign") {
		t.Errorf("notes: %v", rep.Notes)
	}
}
