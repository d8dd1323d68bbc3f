package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/doctor"
	"github.com/kube-fence/kube-fence/internal/doctor/guard"
)

type doctorFlags struct {
	output       string
	netns        string
	fix          bool
	dryRun       bool
	rollback     string
	rollbackFile string
	watch        bool
	resync       time.Duration
	listen       string
	node         string
	kubeconfig   string
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
tools that put their rule back; see docs/doctor.md for the trade-off.

The guard (deploy/doctor/, a DaemonSet) is --watch with --listen, which serves
Prometheus metrics on /metrics and a health check on /healthz, and --node, which
reports each new, gone or rewritten finding as a Kubernetes Event on that Node. It
then logs events instead of printing whole reports.`,
		Example: `  kube-fence doctor
  kube-fence doctor -o json
  kube-fence doctor --fix --dry-run
  kube-fence doctor --fix --rollback-file /var/lib/kube-fence/doctor-rollback.json
  kube-fence doctor --rollback /var/lib/kube-fence/doctor-rollback.json
  kube-fence doctor --netns /run/netns/test
  kube-fence doctor --watch --listen 127.0.0.1:9944 --node "$NODE_NAME"`,
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
	fl.DurationVar(&f.resync, "resync", 5*time.Minute, "with --watch: also re-check after this long without a change (0: only on changes)")
	fl.StringVar(&f.listen, "listen", "", "with --watch: serve /metrics and /healthz on this host:port")
	fl.StringVar(&f.node, "node", os.Getenv("NODE_NAME"), "with --watch: report findings as Events on this Node (default $NODE_NAME)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "with --node: kubeconfig file to reach the API server; empty means the in-cluster service account")
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
		c.Resync = f.resync
		if err := watchOrGuard(ctx, c, f); err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
		return nil
	}
	if f.listen != "" {
		return exitError{code: 2, msg: "--listen only makes sense with --watch"}
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

// watchOrGuard runs plain --watch, or the guard when it has somewhere to
// report to.
func watchOrGuard(ctx context.Context, c doctor.Check, f doctorFlags) error {
	if f.listen == "" && f.node == "" {
		return c.Watch(ctx, nil)
	}
	g := &guard.Guard{Check: c, Listen: f.listen, Node: f.node, Log: c.Log}
	g.Check.Out = nil // the guard logs events, not whole reports
	if f.node != "" {
		client, err := kubeClient(f.kubeconfig, "kube-fence-doctor")
		if err != nil {
			return err
		}
		g.Client = client
	}
	return g.Run(ctx)
}
