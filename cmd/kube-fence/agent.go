package main

import (
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/internal/enforce"
)

func newAgentCmd() *cobra.Command {
	cfg := agent.Defaults()
	defaultNode := cfg.NodeName
	cfg.NodeName = ""
	var (
		cleanup   bool
		ownership = "auto"
		existing  = string(cfg.ExistingConnections)
		logLevel  = "info"
		logFormat = "text"
		logFlags  *dropLogFlags
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Enforce the cluster's NetworkPolicies on this node (the DaemonSet's command)",
		Long: `The agent watches pods, namespaces, NetworkPolicies and its own Node through the API
server and keeps the nftables table "inet kube-fence" equal to what the policies require for
the pods of this node. Changes reach the kernel within milliseconds; the table is read back
after every change, on every nftables change notification and every --verify-interval, and
repaired when it differs. Failures never end the agent: the last committed table stays in
force, /readyz reports the reason, and the agent retries with backoff.

ClusterNetworkPolicies (policy.networking.k8s.io/v1beta1, the admin and baseline tiers) are
watched when their CRD is installed; without it the agent enforces NetworkPolicies alone and
asks every --crd-poll-interval whether it appeared (deploy/crds/README.md installs it).

On SIGTERM the table is left in place so pods stay protected while the agent restarts; use
--cleanup to remove everything kube-fence created.

With --log-denied (the default) the table logs every packet it denies to an NFLOG group,
at most --log-rate a second per side (egress, ingress, unknown address), and the agent
writes one line per denied connection: addresses and ports, the pods at both ends, the
side that denied it and the policies isolating that side. docs/observability.md shows
how to read it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.NodeName == "" {
				cfg.NodeName = defaultNode
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return err
			}
			// client-go reports watch and list failures through klog: send
			// them to the same handler, so every line has the chosen format.
			klog.SetSlogLogger(log)
			if cfg.Ownership, err = agent.ParseOwnership(ownership); err != nil {
				return err
			}
			cfg.DropLog = logFlags.value()
			if cfg.ExistingConnections, err = enforce.ParseExistingConnections(existing); err != nil {
				return err
			}
			if cleanup {
				return agent.Cleanup(cfg, cmd.OutOrStdout())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			client, err := kubeClient(cfg.Kubeconfig, "kube-fence-agent")
			if err != nil {
				return err
			}
			policies, err := policyClient(cfg.Kubeconfig, "kube-fence-agent")
			if err != nil {
				return err
			}
			return agent.Run(ctx, cfg, client, policies, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file to reach the API server; empty means the in-cluster service account")
	f.StringVar(&cfg.NodeName, "node-name", "", "node whose pods to enforce (default $NODE_NAME, else the hostname)")
	f.StringVar(&cfg.MetricsAddr, "metrics-bind-address", cfg.MetricsAddr, "host:port serving Prometheus metrics at /metrics; empty disables")
	f.StringVar(&cfg.HealthAddr, "health-bind-address", cfg.HealthAddr, "host:port serving /healthz (the writer loop is alive) and /readyz (the kernel holds the desired table); empty disables")
	f.BoolVar(&cfg.Profiling, "profiling", false, "also serve Go's runtime profiles (heap, CPU, goroutines) at /debug/pprof/ on --metrics-bind-address, for go tool pprof; off by default")
	f.DurationVar(&cfg.VerifyInterval, "verify-interval", cfg.VerifyInterval, "how often to read the table back and repair it even without a change notification (a backstop)")
	f.DurationVar(&cfg.Debounce, "debounce", cfg.Debounce, "how long to collect a burst of API changes into one kernel transaction")
	f.DurationVar(&cfg.MaxDelay, "max-delay", cfg.MaxDelay, "longest a steady stream of changes may postpone a transaction")
	f.DurationVar(&cfg.CRDPollInterval, "crd-poll-interval", cfg.CRDPollInterval, "how often to ask the API server whether the ClusterNetworkPolicy CRD was installed or removed; the agent starts or stops watching ClusterNetworkPolicies within this time (at most 1m)")
	f.BoolVar(&cfg.DefaultDenyUnknown, "default-deny-unknown", cfg.DefaultDenyUnknown, "isolate addresses of this node's pod CIDRs that belong to no known pod until their pod is known (closes the gap before a new pod is enforced)")
	f.StringVar(&ownership, "table-ownership", ownership, `"auto": claim the table with the kernel's owner and persist flags where supported (Linux 6.9+), so no other process can change or flush it; "off": never`)
	f.StringVar(&existing, "existing-connections", existing, `what a change does to connections opened before it that it now denies: "cut" deletes their conntrack entries right after the commit, so their next packet is judged and dropped (allowed connections are untouched); "keep" lets them run until they end`)
	f.BoolVar(&cfg.CleanupOnExit, "cleanup-on-exit", false, "remove the table when the agent stops (default: leave it, so pods stay protected across restarts)")
	f.BoolVar(&cleanup, "cleanup", false, "remove everything kube-fence created on this node and exit (stop the agent first)")
	f.StringVar(&logLevel, "log-level", logLevel, "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", logFormat, "text or json")
	logFlags = addDropLogFlags(f)
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	// Durations as "1.5ms", not as integer nanoseconds in JSON.
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			return slog.String(a.Key, a.Value.Duration().String())
		}
		return a
	}}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}
