package bench

import (
	"fmt"
	"io"
	"strings"
)

// Markdown writes the results as the tables of docs/benchmarks.md.
func Markdown(w io.Writer, r *Results) error {
	b := &strings.Builder{}
	m := r.Machine
	fmt.Fprintf(b, "Machine: %s, %d cores, %d MiB, Linux %s, %s, %s. Load average %s before, %s after. Took %s.\n\n",
		m.CPU, m.Cores, m.MemoryMiB, m.Kernel, m.Go, m.Nft, m.LoadBefore, m.LoadAfter, r.Took)
	if len(r.Sync) > 0 {
		fmt.Fprintf(b, "Full sync of one node's table (110 pods on the node), median (min-max) of %d runs, milliseconds:\n\n", r.Runs)
		b.WriteString("| cluster | profiles | chains | sets | elements | compile | compile CPU | render | apply (netlink) | apply CPU | compile+render+apply | `nft -f` | `nft -f` CPU | apply / `nft -f` | CPU ratio | full read back |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range r.Sync {
			fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				s.Size, s.Profiles, s.Chains, s.Sets, s.Elements, s.Compile.Spread(), s.CompileCPU.Spread(), s.Render.Spread(),
				s.Apply.Spread(), s.ApplyCPU.Spread(), s.Total.Spread(), s.Nft.Spread(), s.NftCPU.Spread(),
				s.Ratio.Spread(), s.CPURatio.Spread(), s.Verify.Spread())
		}
		b.WriteString("\n| cluster | transaction | text for `nft -f` | compile allocates | nft loaded the same table |\n|---|---|---|---|---|\n")
		for _, s := range r.Sync {
			fmt.Fprintf(b, "| %s | %d messages, %.1f MiB | %.1f MiB | %s MiB | %v |\n",
				s.Size, s.Messages, float64(s.Bytes)/(1<<20), float64(s.TextBytes)/(1<<20), s.CompileMiB.Spread(), s.SameTable)
		}
		b.WriteString("\n")
	}
	if len(r.Changes) > 0 {
		b.WriteString("Incremental changes, from the change handed to the compiler to the kernel's acknowledgement of the commit, median (min-max), milliseconds; transaction sizes are medians:\n\n")
		b.WriteString("| cluster | change | compile | render | diff+apply | to commit | to commit CPU | read back of what changed | messages | bytes | elements +/- | sets, chains added or rewritten |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range r.Changes {
			full := ""
			if c.Full > 0 {
				full = fmt.Sprintf(" (%d full compiles)", c.Full)
			}
			fmt.Fprintf(b, "| %s | %s%s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | +%.0f / -%.0f | %.0f |\n",
				c.Size, c.Kind, full, c.Compile.Spread(), c.Render.Spread(), c.Sync.Spread(), c.ToCommit.Spread(), c.ToCommitCPU.Spread(),
				c.Verify.Spread(), c.Messages, c.Bytes, c.Added, c.Deleted, c.Objects)
		}
		b.WriteString("\nThe changes made:\n\n")
		for _, c := range r.Changes {
			fmt.Fprintf(b, "- %s, %s: %s\n", c.Size, c.Kind, c.Change)
		}
		b.WriteString("\n")
	}
	if len(r.Datapath) > 0 {
		d := r.DatapathCfg
		fmt.Fprintf(b, "Datapath between a client and a server pod on a lab node (bridge with br_netfilter), one node per policy count, %d rounds of %d connects and a %v stream per count; median (min-max) over rounds, ratios to no policy taken within each round:\n\n",
			d.Rounds, d.Connects, d.Stream)
		b.WriteString("| policies | chains | elements | TCP connect, µs (median) | ratio | TCP connect, µs (10th percentile) | ratio | stream, Gbit/s | ratio | denied port dropped |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.Datapath {
			fmt.Fprintf(b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %v |\n", setupName(p), p.Chains, p.Elements,
				p.Connect.Spread(), p.ConnectRatio.Spread(), p.ConnectFast.Spread(), p.ConnectFastRatio.Spread(),
				p.Throughput.Spread(), p.ThroughputRatio.Spread(), p.Denied)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
