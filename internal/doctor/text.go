package doctor

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kube-fence/kube-fence/internal/doctor/iptmodel"
)

// WriteText prints the human report: findings most severe first, each with
// what every modelled iptables version does and what to do.
func WriteText(w io.Writer, r *Report) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	if len(r.Findings) == 0 {
		p("No foreign rule troubles iptables-nft %s to %s in this namespace.\n", iptmodel.Versions[0], iptmodel.Versions[len(iptmodel.Versions)-1])
	} else {
		p("%d rule(s) trouble iptables-nft, most severe first.\n", len(r.Findings))
	}
	for i, f := range r.Findings {
		p("\n[%d] %s: %s %s %s, handle %d (position %d)\n", i+1, strings.ToUpper(f.Severity), f.Family, f.Table, f.Chain, f.Handle, f.Position)
		p("    rule:   %s\n", f.Rule)
		p("    owner:  %s", f.Owner.Name)
		if f.Owner.Reason != "" {
			p(" (%s)", f.Owner.Reason)
		}
		p("\n")
		var faults []string
		for _, e := range f.AtFault {
			faults = append(faults, fmt.Sprintf("#%d %s: %s", e.Index, e.Kind, e.Reason))
		}
		p("    at fault: %s\n", strings.Join(faults, "; "))
		p("    iptables-nft, per version:\n")
		for _, v := range iptmodel.Versions {
			o := f.IPTables[string(v)]
			p("      %-6s -C: %s; -S/-L: %s; iptables-save: %s", v, resultText(o.Check), resultText(o.List), saveText(o.SaveResult))
			if o.MisreadAs != "" {
				p("; reads the rule as `%s`", o.MisreadAs)
			}
			if o.Note != "" {
				p("; %s", o.Note)
			}
			p("\n")
		}
		if len(f.Hits) > 0 {
			p("    breaks:\n")
			for _, h := range f.Hits {
				p("      - %s\n", h)
			}
		}
		p("    what to do:\n")
		if !f.Fix.Offered && f.Fix.Why != "" {
			p("      (no automatic rewrite: %s)\n", f.Fix.Why)
		}
		for _, o := range f.Fix.Options {
			p("      - %s\n", o)
		}
	}
	p("\nToolchain:\n")
	if len(r.Binaries) == 0 {
		p("  no iptables binary found\n")
	}
	for _, b := range r.Binaries {
		p("  %-45s ", b.Path)
		if b.Error != "" {
			p("%s", b.Error)
		} else {
			p("v%s (%s)", b.Version, b.Backend)
		}
		if b.Source == "k3s" {
			p(" [bundled with K3s]")
		}
		p("\n")
	}
	if len(r.Legacy.Tables) > 0 {
		sort.Strings(r.Legacy.Tables)
		p("  legacy xtables tables: %s\n", strings.Join(r.Legacy.Tables, ", "))
	}
	if r.MixedBackends {
		p("  MIXED BACKENDS: rules live both in legacy xtables and in nf_tables; tools using one backend do not see the other's rules\n")
	}
	p("  (%s)\n", r.Legacy.Checked)
	for _, l := range r.Leftovers {
		p("  kube-router %s %s in %s (a leftover if kube-router no longer runs here)\n", l.Kind, l.Name, l.Where)
	}
	for _, n := range r.Notes {
		p("  note: %s\n", n)
	}
	return nil
}

func resultText(r iptmodel.Result) string {
	if r.Exit == 0 {
		return "ok"
	}
	return fmt.Sprintf("exit %d %q", r.Exit, r.Error)
}

func saveText(s iptmodel.Save) string {
	switch s.Outcome {
	case "table omitted":
		return "table silently omitted (exit 0)"
	case "error":
		return fmt.Sprintf("exit %d %q", s.Exit, s.Error)
	}
	return "ok"
}
