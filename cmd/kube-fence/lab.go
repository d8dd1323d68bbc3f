package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/demo"
	"github.com/kube-fence/kube-fence/internal/lab/report"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/lab/topo"
	"github.com/kube-fence/kube-fence/internal/nft"
)

// newEnforcer makes the enforcer the lab runs on every node: the same policy
// compiler and nftables dataplane the agent runs. Tests may swap it; while it
// is nil the lab runs without enforcement and says so.
var newEnforcer = func() (lab.Enforcer, error) { return &lab.KernelEnforcer{}, nil }

type labFlags struct {
	layout   string
	timeout  time.Duration
	parallel int
	existing string
}

func (f *labFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.layout, "layout", string(topo.Bridge),
		"how pods are wired to their node: bridge (cni0 with br_netfilter, like flannel on K3s) or routed (a /32 and /128 route per pod, like Calico)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", time.Second, "how long one probe waits before calling the connection blocked")
	cmd.Flags().IntVar(&f.parallel, "parallel", 128, "how many probes run at once")
	cmd.Flags().StringVar(&f.existing, "existing-connections", string(enforce.ExistingCut),
		"what a scenario step does to connections open before it that it denies: cut or keep, as the agent's flag")
}

// options returns the lab options and whether a real enforcer is in.
func (f *labFlags) options(stderr io.Writer) (lab.Options, bool, error) {
	opts := lab.Options{Layout: topo.Layout(f.layout), ProbeTimeout: f.timeout, Parallelism: f.parallel}
	if err := opts.Defaults().Validate(); err != nil {
		return opts, false, exitError{code: 2, msg: err.Error()}
	}
	existing, err := enforce.ParseExistingConnections(f.existing)
	if err != nil {
		return opts, false, exitError{code: 2, msg: err.Error()}
	}
	if newEnforcer == nil {
		fmt.Fprintln(stderr, "kube-fence lab: warning: this build has no enforcer plugged in; policies are validated but not enforced")
		return opts, false, nil
	}
	e, err := newEnforcer()
	if err != nil {
		return opts, false, fmt.Errorf("start the enforcer: %w", err)
	}
	if ke, ok := e.(*lab.KernelEnforcer); ok {
		ke.ExistingConnections = existing
	}
	opts.Enforcer = e
	return opts, true, nil
}

func newLabCmd() *cobra.Command {
	labCmd := &cobra.Command{
		Use:   "lab",
		Short: "Build pods as network namespaces, enforce policies on them, probe with real packets",
		Long: `The lab builds a cluster out of network namespaces: one per node, one per pod, wired
as a CNI plugin would. It serves every declared containerPort in every pod, enforces the
NetworkPolicies and ClusterNetworkPolicies on each node, and probes every ordered pair of pods on every port and IP
family with real packets. It needs root, and never changes the host's own network
namespace or firewall; everything it creates is gone when it exits.`,
	}
	labCmd.AddCommand(newLabRunCmd(), newLabDemoCmd())
	return labCmd
}

func newLabRunCmd() *cobra.Command {
	var flags labFlags
	var file, output string
	var showTable bool
	cmd := &cobra.Command{
		Use:   "run -f SCENARIO.yaml [-o table|json]",
		Short: "Run a scenario of Namespaces, Pods and NetworkPolicies and print who reaches whom",
		Long: `Run reads a scenario: Kubernetes Namespace, Pod, NetworkPolicy and optionally Node
objects (v1 schemas, YAML or JSON, several documents separated by ---, or a List), and
ClusterNetworkPolicies (policy.networking.k8s.io v1beta1 or v1alpha2, cluster-scoped: the
admin and baseline tiers around the NetworkPolicies).
Pods without status.podIPs get an IPv4 and an IPv6 address; without Node objects every
pod runs on one node. See docs/lab.md for the address plan and the probe methods.

The output is one truth table per protocol, port and address family (rows connect to
columns: . connected, X blocked, - not probed), or with -o json the list of probes.
Each node's table logs its drops, and a blocked probe says where the kernel dropped it:
E (json "dropped_by": "egress") the source pod's egress, I ("ingress") the destination
pod's ingress, U ("unknown-address") an address of the pod CIDRs that no pod holds. The
lab's rate limit is far above what probes send; should a record go missing anyway, the
run fails rather than guess.
SCTP is probed with a crafted INIT (method sctp-init), as this kernel has no SCTP sockets.

Exit status: 0 when the run worked, whatever the connectivity; 2 for an invalid scenario
(the message names the object and the field); 1 when the lab itself failed.`,
		Example: `  kube-fence lab run -f scenario.yaml
  kube-fence lab run -f scenario.yaml -o json --layout routed
  cat scenario.yaml | kube-fence lab run -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return exitError{code: 2, msg: fmt.Sprintf("--output %q: want table or json", output)}
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			return runScenario(ctx, cmd, file, output, showTable, flags)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the scenario file, or - for standard input")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVar(&showTable, "show-table", false, "also print each node's kube-fence table in nft syntax (to standard error with -o json)")
	_ = cmd.MarkFlagRequired("filename")
	flags.register(cmd)
	return cmd
}

func runScenario(ctx context.Context, cmd *cobra.Command, file, output string, showTable bool, flags labFlags) error {
	stderr := cmd.ErrOrStderr()
	s, err := readScenario(cmd, file)
	if err != nil {
		return err
	}
	snap, err := s.Snapshot()
	if err != nil {
		return invalid(file, err)
	}
	if err := requireRoot(); err != nil {
		return err
	}
	opts, _, err := flags.options(stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	l, err := lab.New(ctx, snap, opts)
	if err != nil {
		return labFailed(ctx, err)
	}
	defer l.Close()
	built := time.Since(start)
	start = time.Now()
	results, err := l.Probe(ctx)
	if err != nil {
		return labFailed(ctx, err)
	}
	fmt.Fprintf(stderr, "kube-fence lab: %d nodes, %d pods (%s layout) built in %v; %d probes in %v\n",
		len(l.Nodes()), len(l.Snapshot().Pods), opts.Defaults().Layout, built.Round(time.Millisecond),
		len(results), time.Since(start).Round(time.Millisecond))
	out := cmd.OutOrStdout()
	if output == "json" {
		err = report.WriteJSON(out, results)
	} else {
		err = report.WriteTable(out, results)
	}
	if err != nil {
		return err
	}
	if showTable {
		w := out
		if output == "json" {
			w = stderr
		}
		if err := writeTables(w, l, opts.Enforcer); err != nil {
			return err
		}
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("clean up the lab: %w", err)
	}
	for _, r := range results {
		if r.Problem != "" {
			return exitError{code: 1, msg: "some probes were answered by the wrong pod: the lab is miswired (see the output)"}
		}
	}
	return nil
}

func readScenario(cmd *cobra.Command, file string) (*scenario.Scenario, error) {
	var r io.Reader = cmd.InOrStdin()
	name := "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, exitError{code: 2, msg: err.Error()}
		}
		defer f.Close()
		r, name = f, file
	}
	s, err := scenario.Read(r)
	if err != nil {
		return nil, invalid(name, err)
	}
	return s, nil
}

func invalid(name string, err error) error {
	if scenario.IsInvalid(err) {
		return exitError{code: 2, msg: name + ": " + err.Error()}
	}
	return err
}

// interruptible returns a context cancelled by SIGINT or SIGTERM; once it
// is, a second signal kills the process as usual, should clean-up hang.
func interruptible(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return exitError{code: 1, msg: "the lab creates network namespaces and needs root: run it as root"}
	}
	return nil
}

// labFailed reports a lab error, or an interruption as such: everything was
// removed either way.
func labFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return exitError{code: 130, msg: "interrupted; everything the lab created was removed"}
	}
	if scenario.IsInvalid(err) {
		return exitError{code: 2, msg: err.Error()}
	}
	return err
}

func newLabDemoCmd() *cobra.Command {
	var flags labFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show enforcement on the Kubernetes e2e 3x3 model, next to the rule that crash-loops K3s",
		Long: `The demo builds the Kubernetes e2e model (namespaces x, y, z; pods a, b, c; TCP and UDP
on ports 80 and 81; dual-stack) on one node. It first puts the foreign nftables rule that
makes K3s crash-loop into the node's ip filter FORWARD chain and shows iptables -C failing
there as kube-router's check does (when iptables and nft are installed). Then it applies
three NetworkPolicies one at a time and prints the reachability matrix after each.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			if err := requireRoot(); err != nil {
				return err
			}
			opts, enforcing, err := flags.options(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := demo.Run(ctx, cmd.OutOrStdout(), demo.Options{Lab: opts, Enforcing: enforcing}); err != nil {
				return labFailed(ctx, err)
			}
			return nil
		},
	}
	flags.register(cmd)
	return cmd
}

// writeTables prints the table the enforcer committed on each node, as it
// rendered it; the read back after each transaction found the kernel's copy
// equal, or the step failed.
func writeTables(w io.Writer, l *lab.Lab, e lab.Enforcer) error {
	ke, ok := e.(*lab.KernelEnforcer)
	if !ok {
		return nil
	}
	for _, n := range l.Nodes() {
		table := ke.Desired(n.Name())
		if table == nil {
			continue
		}
		fmt.Fprintf(w, "\n# node %s: table inet %s as committed\n", n.Name(), nft.TableName)
		if err := nft.WriteText(w, table); err != nil {
			return err
		}
	}
	return nil
}
