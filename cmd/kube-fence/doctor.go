package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/doctor"
	"github.com/kube-fence/kube-fence/internal/doctor/repair"
	"github.com/kube-fence/kube-fence/internal/nlrules"
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
		return doRollback(out, f)
	}
	opts := doctor.Options{NetnsPath: f.netns}
	opts.Toolchain.Root = f.root
	code, err := checkOnce(ctx, out, errOut, f, opts)
	if !f.watch || err != nil {
		if err != nil {
			return err
		}
		return exitCode(code)
	}
	return watch(ctx, out, errOut, f, opts)
}

func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return exitError{code: code}
}

// checkOnce scans, repairs when asked, and prints the report; it returns
// the exit status the report calls for.
func checkOnce(ctx context.Context, out, errOut io.Writer, f doctorFlags, opts doctor.Options) (int, error) {
	if f.fix {
		if err := fix(out, f); err != nil {
			return 2, exitError{code: 2, msg: err.Error()}
		}
	}
	rep, err := doctor.Scan(ctx, opts)
	if err != nil {
		return 2, exitError{code: 2, msg: "scan failed: " + err.Error()}
	}
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 2, err
		}
	} else if err := doctor.WriteText(out, rep); err != nil {
		return 2, err
	}
	if rep.Problems() {
		return 1, nil
	}
	return 0, nil
}

func fix(out io.Writer, f doctorFlags) error {
	ns, err := doctor.OpenNamespace(f.netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		return err
	}
	defer c.Close()
	rs, err := c.Read()
	if err != nil {
		return fmt.Errorf("read ruleset: %w", err)
	}
	props, skipped := repair.Plan(rs)
	w := out
	if f.output == "json" {
		w = os.Stderr // keep stdout a single JSON document
	}
	for _, p := range props {
		fmt.Fprintf(w, "fix: %s %s handle %d (position %d) -> %s\n", p.Old.Table, p.Old.Chain, p.Old.Handle, p.Old.Index, p.Describe)
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "fix: left alone: %s\n", s)
	}
	if f.dryRun || len(props) == 0 {
		if len(props) == 0 {
			fmt.Fprintln(w, "fix: nothing to rewrite")
		} else {
			fmt.Fprintln(w, "fix: dry run, nothing changed")
		}
		return nil
	}
	stamp := time.Now().UTC().Format("20060102T150405.000")
	path := f.rollbackFile
	if path == "" {
		path = "kube-fence-doctor-rollback-" + stamp + ".json"
	} else if _, err := os.Stat(path); err == nil {
		// Never overwrite an earlier rollback file (--watch repairs again).
		path = strings.TrimSuffix(path, ".json") + "-" + stamp + ".json"
	}
	if err := repair.Fix(c, rs, props, path, f.netns); err != nil {
		return err
	}
	fmt.Fprintf(w, "fix: %d rule(s) rewritten in one transaction; undo with: kube-fence doctor --rollback %s\n", len(props), path)
	return nil
}

func doRollback(out io.Writer, f doctorFlags) error {
	rf, err := repair.ReadRollback(f.rollback)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	ns, err := doctor.OpenNamespace(f.netns)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	defer ns.Close()
	c, err := nlrules.Dial(ns.FD())
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	defer c.Close()
	n, err := repair.Rollback(c, rf)
	if err != nil {
		return exitError{code: 2, msg: "rollback: " + err.Error()}
	}
	fmt.Fprintf(out, "rollback: %d rule(s) restored from %s\n", n, f.rollback)
	return nil
}

func watch(ctx context.Context, out, errOut io.Writer, f doctorFlags, opts doctor.Options) error {
	ns, err := doctor.OpenNamespace(f.netns)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	defer ns.Close()
	changes, err := nlrules.Changes(ctx, ns.FD())
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
		}
		// Let a burst of transactions (a tool restoring many rules) settle.
		time.Sleep(200 * time.Millisecond)
		for drained := false; !drained; {
			select {
			case _, ok := <-changes:
				if !ok {
					return nil
				}
			default:
				drained = true
			}
		}
		fmt.Fprintf(errOut, "--- nftables changed at %s, checking again\n", time.Now().Format(time.RFC3339))
		if _, err := checkOnce(ctx, out, errOut, f, opts); err != nil {
			var ex exitError
			if errors.As(err, &ex) {
				fmt.Fprintln(errOut, "kube-fence:", ex.msg)
				continue
			}
			return err
		}
	}
}
