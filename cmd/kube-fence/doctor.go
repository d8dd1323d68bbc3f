package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/doctor"
)

type doctorFlags struct {
	output       string
	netns        string
	fix          bool
	dryRun       bool
	rollback     string
	rollbackFile string
	watch        bool
	root         string
}

func newDoctorCmd() *cobra.Command {
	var f doctorFlags
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Find, explain and safely repair foreign nftables rules that break iptables-nft tools",
		Long: `doctor reads the nftables ruleset of this network namespace over netlink (it runs no
nft or iptables binary to scan) and reports every rule in an iptables-managed table
(ip/ip6 filter, nat, mangle, raw, security) that iptables-nft 1.8.7 to 1.8.11 cannot
decode or misreads: for each, what "iptables -C", "-S"/"-L" and "iptables-save" do per
version, which programs break (K3s's embedded kube-router crash-loops on it), who
probably wrote it, and what to do. It also lists the iptables binaries on the node
(PATH, -legacy/-nft, K3s's bundled copies), legacy xtables tables beside nf_tables
ones, and kube-router leftovers.

Exit status: 0 nothing wrong, 1 problems found, 2 the scan itself failed.

Repair is explicit. --fix rewrites, in place and in one atomic transaction, only the
rules that have an exactly equivalent iptables-written form (ct state -> conntrack,
ct mark -> connmark, fib daddr type -> addrtype, ip dscp -> dscp); everything else is
reported with options and left alone. Before any change it writes a rollback file
(--rollback-file) holding the original rules byte for byte; --rollback FILE restores
them. --dry-run shows what --fix would change. It never flushes or deletes a table.

--watch re-checks after every nftables change (and, with --fix, repairs again) for
tools that put their rule back; see docs/doctor.md for the trade-off.`,
		Example: `  kube-fence doctor
  kube-fence doctor -o json
  kube-fence doctor --fix --dry-run
  kube-fence doctor --fix --rollback-file /var/lib/kube-fence/doctor-rollback.json
  kube-fence doctor --rollback /var/lib/kube-fence/doctor-rollback.json
  kube-fence doctor --netns /run/netns/test`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "text", "report format: text or json (schema in docs/doctor.md)")
	fl.StringVar(&f.netns, "netns", "", "scan this network namespace (/proc/PID/ns/net, /run/netns/NAME) instead of the current one")
	fl.BoolVar(&f.fix, "fix", false, "rewrite the rules that have an exact iptables-written equivalent, in place")
	fl.BoolVar(&f.dryRun, "dry-run", false, "with --fix: show what would change and change nothing")
	fl.StringVar(&f.rollback, "rollback", "", "restore the original rules recorded in this rollback file")
	fl.StringVar(&f.rollbackFile, "rollback-file", "", "where --fix writes the rollback file (default kube-fence-doctor-rollback-<time>.json in the current directory)")
	fl.BoolVar(&f.watch, "watch", false, "keep running and re-check on every nftables change")
	fl.StringVar(&f.root, "root", "", "filesystem root for the toolchain inventory (testing)")
	_ = fl.MarkHidden("root")
	return cmd
}

func runDoctor(ctx context.Context, out, errOut io.Writer, f doctorFlags) error {
	if f.output != "text" && f.output != "json" {
		return exitError{code: 2, msg: fmt.Sprintf("--output %q: want text or json", f.output)}
	}
	if f.dryRun && !f.fix {
		return exitError{code: 2, msg: "--dry-run only makes sense with --fix"}
	}
	if f.rollback != "" && f.fix {
		return exitError{code: 2, msg: "--rollback and --fix exclude each other"}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.rollback != "" {
		n, err := doctor.Rollback(f.netns, f.rollback)
		if err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
		fmt.Fprintf(out, "rollback: %d rule(s) restored from %s\n", n, f.rollback)
		return nil
	}
	log := out
	if f.output == "json" {
		log = errOut // keep stdout a single JSON document
	}
	c := doctor.Check{
		Scan:       doctor.Options{NetnsPath: f.netns},
		Fix:        f.fix,
		FixOptions: doctor.FixOptions{DryRun: f.dryRun, RollbackFile: f.rollbackFile},
		JSON:       f.output == "json",
		Out:        out,
		Log:        log,
	}
	c.Scan.Toolchain.Root = f.root
	if f.watch {
		if err := c.Watch(ctx, nil); err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
		return nil
	}
	res, err := c.Once(ctx)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if res.Report.Problems() {
		return exitError{code: 1}
	}
	return nil
}
