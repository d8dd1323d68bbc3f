package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

func doctorExit(err error) int {
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestDoctorCommand runs the seed's situation through the command: JSON
// with the documented fields and exit 1, --fix then exit 0, --rollback, and
// exit 2 when the scan cannot run.
func TestDoctorCommand(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, c := range [][]string{
		{"iptables", "-A", "FORWARD", "-m", "comment", "--comment", "kube-router netpol - TEMCG2JMHZYE7H7T", "-j", "ACCEPT"},
		{"nft", "insert rule ip filter FORWARD ct state established,related accept"},
	} {
		if out, err := ns.Command(c[0], c[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	base := doctorFlags{output: "json", netns: ns.Path(), root: t.TempDir()}
	var out bytes.Buffer
	err = runDoctor(context.Background(), &out, &bytes.Buffer{}, base)
	if code := doctorExit(err); code != 1 {
		t.Fatalf("scan exit %d (%v), want 1", code, err)
	}
	var rep struct {
		SchemaVersion int `json:"schema_version"`
		Findings      []struct {
			Family, Table, Chain, Rule string
			Handle                     uint64
			Owner                      struct{ Name string }
			IPTables                   map[string]struct {
				Check struct {
					Exit  int
					Error string
				}
				List struct{ Exit int }
				Save string
			} `json:"iptables"`
		}
		Binaries      []any `json:"binaries"`
		MixedBackends *bool `json:"mixed_backends"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out.String())
	}
	if rep.SchemaVersion != 1 || len(rep.Findings) != 1 || rep.Binaries == nil || rep.MixedBackends == nil {
		t.Fatalf("report: %s", out.String())
	}
	f := rep.Findings[0]
	v := f.IPTables["1.8.9"]
	if f.Family != "ip" || f.Table != "filter" || f.Chain != "FORWARD" || f.Handle == 0 || f.Rule != "ct state established,related accept" ||
		f.Owner.Name != "unknown" || v.Check.Exit != 3 || v.Check.Error != "cmp sreg undef" || v.List.Exit != 1 || v.Save != "table omitted" {
		t.Errorf("finding: %+v", f)
	}
	if f.IPTables["1.8.7"].Check.Exit != 0 {
		t.Errorf("1.8.7 -C: %+v", f.IPTables["1.8.7"])
	}

	rb := filepath.Join(t.TempDir(), "rb.json")
	fixFlags := base
	fixFlags.fix, fixFlags.rollbackFile, fixFlags.output = true, rb, "text"
	out.Reset()
	if code := doctorExit(runDoctor(context.Background(), &out, &bytes.Buffer{}, fixFlags)); code != 0 {
		t.Fatalf("--fix exit %d, want 0 (nothing left):\n%s", code, out.String())
	}
	if o, err := ns.Command("iptables", "-C", "FORWARD", "-m", "comment", "--comment", "kube-router netpol - TEMCG2JMHZYE7H7T", "-j", "ACCEPT"); err != nil {
		t.Errorf("iptables -C after --fix: %v: %s", err, o)
	}
	rbFlags := base
	rbFlags.rollback, rbFlags.output = rb, "text"
	out.Reset()
	if code := doctorExit(runDoctor(context.Background(), &out, &bytes.Buffer{}, rbFlags)); code != 0 || !strings.Contains(out.String(), "1 rule(s) restored") {
		t.Errorf("--rollback exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := doctorExit(runDoctor(context.Background(), &out, &bytes.Buffer{}, base)); code != 1 {
		t.Errorf("after rollback scan exit %d, want 1 again", code)
	}
	bad := base
	bad.netns = "/nonexistent/netns"
	if code := doctorExit(runDoctor(context.Background(), &out, &bytes.Buffer{}, bad)); code != 2 {
		t.Errorf("scan of a missing namespace exits %d, want 2", code)
	}
}

// TestDoctorWatchFixesAgain: with --watch --fix, a tool putting its native
// rule back gets it rewritten again shortly after.
func TestDoctorWatchFixesAgain(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "iptables", "iptables")
	testenv.RequireBinary(t, "nft", "nftables")
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	check := []string{"-C", "FORWARD", "-m", "comment", "--comment", "sentinel", "-j", "ACCEPT"}
	if out, err := ns.Command("iptables", "-A", "FORWARD", "-m", "comment", "--comment", "sentinel", "-j", "ACCEPT"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	f := doctorFlags{output: "text", netns: ns.Path(), root: dir, fix: true, watch: true, rollbackFile: filepath.Join(dir, "rb.json")}
	go func() { done <- runDoctor(ctx, io.Discard, io.Discard, f) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch ended with %v", err)
		}
	}()
	time.Sleep(300 * time.Millisecond) // the first check runs and the watch starts
	if out, err := ns.Command("nft", "insert rule ip filter FORWARD ct state established,related accept"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := ns.Command("iptables", check...); err == nil {
			return
		}
	}
	t.Fatal("the rule put back was not repaired within 5s")
}
