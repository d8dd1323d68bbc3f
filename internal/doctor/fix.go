package doctor

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kube-fence/kube-fence/internal/doctor/repair"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// FixOptions configure one repair.
type FixOptions struct {
	NetnsPath string
	// DryRun lists what would change and changes nothing.
	DryRun bool
	// RollbackFile is where the original rules are written before any
	// change; empty means kube-fence-doctor-rollback-<time>.json in the
	// current directory. An existing file is never overwritten: the time
	// is appended instead.
	RollbackFile string
	// Log receives one line per rewrite and per rule left alone.
	Log io.Writer
	// Now stamps rollback file names; time.Now when nil.
	Now func() time.Time
}

// FixResult is what one repair did.
type FixResult struct {
	Rewritten    []string // "ip filter FORWARD handle 5 -> -m conntrack ..."
	LeftAlone    []string
	RollbackFile string // written before the change; empty when nothing changed
}

// Fix rewrites, in one transaction, every rule that has an exactly
// equivalent iptables-written form, after writing the rollback file.
func Fix(o FixOptions) (FixResult, error) {
	var res FixResult
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ns, err := openNamespace(o.NetnsPath)
	if err != nil {
		return res, err
	}
	defer ns.close()
	c, err := nlrules.Dial(ns.fd())
	if err != nil {
		return res, err
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		return res, fmt.Errorf("read ruleset: %w", err)
	}
	props, skipped := repair.Plan(rs)
	for _, p := range props {
		line := fmt.Sprintf("%s %s %s handle %d (position %d) -> %s", familyName(p.Old.Family), p.Old.Table, p.Old.Chain, p.Old.Handle, p.Old.Index, p.Describe)
		res.Rewritten = append(res.Rewritten, line)
		fmt.Fprintf(o.Log, "fix: %s\n", line)
	}
	res.LeftAlone = skipped
	for _, s := range skipped {
		fmt.Fprintf(o.Log, "fix: left alone: %s\n", s)
	}
	switch {
	case len(props) == 0:
		fmt.Fprintln(o.Log, "fix: nothing to rewrite")
		return res, nil
	case o.DryRun:
		fmt.Fprintln(o.Log, "fix: dry run, nothing changed")
		res.Rewritten = nil
		return res, nil
	}
	path := rollbackPath(o.RollbackFile, o.Now())
	if err := repair.Fix(c, rs, props, path, o.NetnsPath); err != nil {
		return FixResult{LeftAlone: skipped}, err
	}
	res.RollbackFile = path
	fmt.Fprintf(o.Log, "fix: %d rule(s) rewritten in one transaction; undo with: kube-fence doctor --rollback %s\n", len(props), path)
	return res, nil
}

func rollbackPath(path string, now time.Time) string {
	stamp := now.UTC().Format("20060102T150405.000")
	if path == "" {
		return "kube-fence-doctor-rollback-" + stamp + ".json"
	}
	if _, err := os.Stat(path); err == nil {
		// Never overwrite an earlier rollback file (--watch repairs again).
		return strings.TrimSuffix(path, ".json") + "-" + stamp + ".json"
	}
	return path
}

// Rollback restores the original rules recorded in file, in place and in
// one transaction; it returns how many.
func Rollback(netnsPath, file string) (int, error) {
	rf, err := repair.ReadRollback(file)
	if err != nil {
		return 0, err
	}
	ns, err := openNamespace(netnsPath)
	if err != nil {
		return 0, err
	}
	defer ns.close()
	c, err := nlrules.Dial(ns.fd())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n, err := repair.Rollback(c, rf)
	if err != nil {
		return 0, fmt.Errorf("rollback from %s: %w", file, err)
	}
	return n, nil
}
