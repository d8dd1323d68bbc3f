package repair

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
	"github.com/kube-fence/kube-fence/internal/nlrules"
)

// Plan lists the exact rewrites available for every rule, in an
// iptables-managed table, that troubles some modelled iptables version.
// Skipped explains, per rule, why no rewrite is offered.
func Plan(rs *nlrules.Ruleset) (props []Proposal, skipped []string) {
	for _, r := range rs.Rules {
		if !iptmodel.Manages(r.Family, r.Table) {
			continue
		}
		exprs := r.Decoded()
		broken := false
		for _, v := range iptmodel.Versions {
			if iptmodel.Rule(v, r.Family, exprs).Broken() {
				broken = true
			}
		}
		if !broken {
			continue
		}
		ch, _ := rs.Chain(r.Family, r.Table, r.Chain)
		p, why := Propose(r, ch)
		if p == nil {
			skipped = append(skipped, fmt.Sprintf("%s %s handle %d: %s", r.Table, r.Chain, r.Handle, why))
			continue
		}
		props = append(props, *p)
	}
	return props, skipped
}

// RollbackFile holds the original rules, byte for byte, and what replaced
// them, so --rollback can find the rewritten rules and restore them.
type RollbackFile struct {
	Kind       string          `json:"kind"` // "kube-fence-doctor-rollback"
	Version    int             `json:"version"`
	Created    time.Time       `json:"created"`
	Namespace  string          `json:"namespace,omitempty"`
	Generation uint32          `json:"generation"`
	Rules      []RollbackEntry `json:"rules"`
}

// RollbackEntry is one rewritten rule.
type RollbackEntry struct {
	Original nlrules.Rule      `json:"original"`
	Rewrite  []nlrules.RawExpr `json:"rewrite"`
}

const rollbackKind = "kube-fence-doctor-rollback"

// WriteRollback writes the file and syncs it and its directory before
// returning, so it survives a crash right after the ruleset changes. It
// refuses to overwrite an existing file.
func WriteRollback(path string, gen uint32, namespace string, props []Proposal) error {
	rf := RollbackFile{Kind: rollbackKind, Version: 1, Created: time.Now().UTC(), Namespace: namespace, Generation: gen}
	for _, p := range props {
		rf.Rules = append(rf.Rules, RollbackEntry{Original: p.Old, Rewrite: p.New})
	}
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create rollback file: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write rollback file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync rollback file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ReadRollback loads a rollback file.
func ReadRollback(path string) (*RollbackFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rollback file: %w", err)
	}
	var rf RollbackFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, fmt.Errorf("parse rollback file %s: %w", path, err)
	}
	if rf.Kind != rollbackKind || rf.Version != 1 {
		return nil, fmt.Errorf("%s is not a kube-fence doctor rollback file (kind %q version %d)", path, rf.Kind, rf.Version)
	}
	return &rf, nil
}

// Fix writes the rollback file, then applies all proposals in one
// transaction guarded by the generation they were planned from.
func Fix(c *nlrules.Conn, rs *nlrules.Ruleset, props []Proposal, rollbackPath, namespace string) error {
	if len(props) == 0 {
		return nil
	}
	if rollbackPath == "" {
		return errors.New("a rollback file path is required before any change")
	}
	if err := WriteRollback(rollbackPath, rs.Generation, namespace, props); err != nil {
		return err
	}
	var reps []nlrules.Replacement
	for _, p := range props {
		reps = append(reps, nlrules.Replacement{Family: p.Old.Family, Table: p.Old.Table, Chain: p.Old.Chain, Handle: p.Old.Handle, Exprs: p.New, UserData: p.Old.UserData, Compat: p.Old.Compat})
	}
	if err := c.Replace(rs.Generation, reps); err != nil {
		return fmt.Errorf("apply rewrites (rollback file %s kept, nothing changed): %w", rollbackPath, err)
	}
	return nil
}

// Rollback restores the original rules recorded in rf: each rewritten rule
// is found again by its exact expressions in its chain and replaced, in
// place, by the original, all in one transaction. If any rewritten rule is
// gone or changed, nothing is written.
func Rollback(c *nlrules.Conn, rf *RollbackFile) (int, error) {
	rs, err := c.Read()
	if err != nil {
		return 0, fmt.Errorf("read ruleset: %w", err)
	}
	var reps []nlrules.Replacement
	used := map[uint64]bool{}
	for _, e := range rf.Rules {
		o := e.Original
		var found *nlrules.Rule
		for _, r := range rs.ChainRules(o.Family, o.Table, o.Chain) {
			r := r
			if used[r.Handle] || !nlrules.SameExprs(r.Exprs, e.Rewrite) {
				continue
			}
			if found == nil || abs(r.Index-o.Index) < abs(found.Index-o.Index) {
				found = &r
			}
		}
		if found == nil {
			return 0, fmt.Errorf("the rewritten rule once at %s %s position %d is no longer there unchanged; nothing was restored", o.Table, o.Chain, o.Index)
		}
		used[found.Handle] = true
		reps = append(reps, nlrules.Replacement{Family: o.Family, Table: o.Table, Chain: o.Chain, Handle: found.Handle, Exprs: o.Exprs, UserData: o.UserData, Compat: o.Compat})
	}
	if err := c.Replace(rs.Generation, reps); err != nil {
		return 0, err
	}
	return len(reps), nil
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
