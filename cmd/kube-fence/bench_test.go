package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/bench"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// TestBenchSmall runs `kube-fence bench --size small` once, as CI does, to
// keep the command working. It checks what was measured and that the
// measurements are sound (the table nft loaded is the programmed one,
// incremental changes stayed incremental, policies were enforced on the
// measured packets), never how fast anything was.
func TestBenchSmall(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "nft", "nftables")
	dir := t.TempDir()
	jsonFile, plotFile := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.png")
	out, stderr, code := run(t, "", "bench", "--size", "small", "--json", jsonFile, "--plot", plotFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"| 1k pods / 100 policies |", "pod relabelled into a selector", "namespace relabelled", "| 100 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Sync) != 1 || !res.Sync[0].SameTable || res.Sync[0].Elements == 0 || len(res.Sync[0].Apply) != 1 {
		t.Errorf("sync results: %+v", res.Sync)
	}
	if len(res.Changes) != 9 {
		t.Errorf("%d kinds of change measured, want 9", len(res.Changes))
	}
	for _, c := range res.Changes {
		if c.Full > 0 || c.Messages == 0 || len(c.ToCommit) != 2 {
			t.Errorf("%s: %d full compiles, %v messages, %d runs; want an incremental change that sends something, twice", c.Kind, c.Full, c.Messages, len(c.ToCommit))
		}
	}
	if len(res.Datapath) != 3 || res.Datapath[0].Denied || !res.Datapath[1].Denied || res.Datapath[1].Elements <= res.Datapath[0].Elements || res.Datapath[2].CNPs != 10 || !res.Datapath[2].Denied {
		t.Errorf("datapath results: %+v", res.Datapath)
	}
	f, err := os.Open(plotFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("plot: %v", err)
	}
}

func TestBenchFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--size", "huge"}, `--size "huge": want small or full`},
		{[]string{"--parts", "sync,magic"}, `--parts: "magic" is not sync, changes or datapath`},
		{[]string{"--datapath-policies", "10,0"}, "the first must be 0"},
		{[]string{"--datapath-policies", "x"}, `"x" is not a list of counts`},
		{[]string{"--runs", "0"}, "want at least 1"},
		{[]string{"--size", "full", "--pods", "10000,7"}, "--pods 7: --size full measures 1000, 5000, 10000, 20000, 50000, 100000 pods"},
		{[]string{"--pods", "ten"}, `--pods: "ten" is not a list of counts`},
		{[]string{"--datapath-cnps", "10,0"}, "want positive counts (0 is the baseline)"},
	}
	for _, c := range cases {
		_, stderr, code := run(t, "", append([]string{"bench"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("bench %v: exit %d, %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// TestCNPCounts: --datapath-cnps 0 measures no ClusterNetworkPolicies, as
// its help says, instead of failing validation.
func TestCNPCounts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{{"0", nil}, {"10", []int{10}}, {"10,100", []int{10, 100}}} {
		got, err := cnpCounts(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("cnpCounts(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
