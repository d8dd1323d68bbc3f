package doctor

import (
	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
	"github.com/kube-fence/kube-fence/internal/doctor/toolchain"
)

// SchemaVersion is the version of the JSON report. Fields are only ever
// added within a version; docs/doctor.md documents them.
const SchemaVersion = 1

// Report is the result of one scan.
type Report struct {
	SchemaVersion int       `json:"schema_version"`
	Findings      []Finding `json:"findings"`
	// Tables holds, per iptables-managed table present, what -S/-L and
	// iptables-save do with it per version.
	Tables        []TableReport        `json:"tables"`
	Binaries      []toolchain.Binary   `json:"binaries"`
	MixedBackends bool                 `json:"mixed_backends"`
	Legacy        toolchain.Legacy     `json:"legacy"`
	Leftovers     []toolchain.Leftover `json:"kube_router_leftovers"`
	Notes         []string             `json:"notes,omitempty"`
}

// Finding is one rule that breaks, or is misread by, a modelled version.
type Finding struct {
	Family   string `json:"family"`
	Table    string `json:"table"`
	Chain    string `json:"chain"`
	Handle   uint64 `json:"handle"`
	Position int    `json:"position"` // 0-based index in the chain
	Rule     string `json:"rule"`     // as `nft list` prints it
	// Severity: "fatal" (-C/-D exit 3 in some version), "incompatible"
	// (the table is hidden from -S/-L/iptables-save), "misread" (a version
	// silently reads another rule).
	Severity string             `json:"severity"`
	AtFault  []FaultExpr        `json:"at_fault"`
	IPTables map[string]Outcome `json:"iptables"`
	Hits     []string           `json:"hits"`
	Owner    Owner              `json:"owner"`
	Fix      FixAdvice          `json:"fix"`
}

// FaultExpr is an expression iptables cannot handle.
type FaultExpr struct {
	Index  int    `json:"index"`
	Kind   string `json:"kind"`   // kernel expression name: ct, fib, meta, cmp, ...
	Reason string `json:"reason"` // unlisted, or the decoder's message, or "skipped"
}

// Outcome is what one iptables-nft version does because of this rule.
type Outcome struct {
	// Check is `iptables -C <chain> ...` (and -D with a rule spec) when its
	// walk of the chain reaches this rule.
	Check iptmodel.Result `json:"check"`
	// List is `iptables -t <table> -S` (and -L) on the table.
	List iptmodel.Result `json:"list"`
	// Save is "ok", "table omitted" or "error"; SaveResult has the details.
	Save       string        `json:"save"`
	SaveResult iptmodel.Save `json:"save_result"`
	MisreadAs  string        `json:"misread_as,omitempty"`
	Note       string        `json:"note,omitempty"`
	Basis      string        `json:"basis"`
}

// Owner is a guess at which program wrote the rule.
type Owner struct {
	Name   string `json:"name"` // "unknown" when nothing points anywhere
	Reason string `json:"reason,omitempty"`
}

// FixAdvice says whether --fix can rewrite the rule and what else to do.
type FixAdvice struct {
	Offered bool     `json:"offered"`
	Rewrite string   `json:"rewrite,omitempty"` // what the rule becomes, iptables-save style
	Why     string   `json:"why,omitempty"`     // why no rewrite is offered
	Options []string `json:"options"`
}

// TableReport is the table-level view of one iptables-managed table.
type TableReport struct {
	Family   string                          `json:"family"`
	Table    string                          `json:"table"`
	Versions map[string]iptmodel.TableResult `json:"iptables"`
}

// Problems reports whether the scan found anything that needs attention:
// findings or mixed backends. kube-router's chains and ipsets are reported
// but are no problem by themselves: on a K3s node they are live, not left
// over.
func (r *Report) Problems() bool {
	return len(r.Findings) > 0 || r.MixedBackends
}
