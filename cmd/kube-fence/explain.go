package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/explain"
	"github.com/kube-fence/kube-fence/internal/lister"
	"github.com/kube-fence/kube-fence/internal/policy"
)

func newExplainCmd() *cobra.Command {
	var (
		file, kubeconfig, addresses, protocol, output string
		q                                             explain.Query
		port                                          int
	)
	cmd := &cobra.Command{
		Use:   "explain (-f MANIFESTS | --kubeconfig FILE) --from NS/POD|IP --to NS/POD|IP --port N",
		Short: "Say whether a connection is allowed, and which policies and rules decide it",
		Long: `Explain answers "may this connection pass, and why?" from the policies themselves (not
from the kernel), for every address family the two ends share:

  - allowed or denied;
  - for each side (the source's egress, the destination's ingress): whether a policy
    isolates the pod in that direction, which policies do, and which rules allow the
    connection (by policy and index, e.g. "y/allow-web ingress[1]"), or, when that side
    denies, the rule that came nearest (its peer matched but not its port, or the other
    way round);
  - why a side allows without any rule deciding: the same pod, an end that is no pod
    under NetworkPolicy, the pod's own node, or no isolation.

The objects come from manifests (-f, the lab's scenario format: Namespaces, Pods, Nodes,
NetworkPolicies; "kubectl get namespaces,pods,nodes,networkpolicies -A -o yaml" prints
them) or from a live cluster (--kubeconfig, which only lists objects and changes
nothing). An end is a pod as NAMESPACE/NAME, or an IP address (the pod holding it, if
any).

Output (-o): text, or json with the schema in docs/observability.md.
Exit status: 0 when it answered, whatever the answer; 2 for bad input (a flag, an
unknown pod, manifests that do not validate, ends that share no address family).`,
		Example: `  kube-fence explain -f cluster.yaml --from x/a --to y/b --port 80
  kube-fence explain --kubeconfig ~/.kube/config --from 10.42.0.7 --to monitoring/prometheus-0 --port 9090 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (file == "") == (kubeconfig == "") {
				return exitError{code: 2, msg: "give exactly one of -f/--filename and --kubeconfig"}
			}
			if output != "text" && output != "json" {
				return exitError{code: 2, msg: fmt.Sprintf("-o %q: want text or json", output)}
			}
			if port < 1 || port > 65535 {
				return exitError{code: 2, msg: fmt.Sprintf("--port %d: want 1-65535", port)}
			}
			proto, ok := policy.ProtocolFromAPI(corev1.Protocol(strings.ToUpper(protocol)))
			if !ok || protocol == "" {
				return exitError{code: 2, msg: fmt.Sprintf("--protocol %q: want TCP, UDP or SCTP", protocol)}
			}
			q.Protocol, q.Port = proto, uint16(port)
			snap, err := explainSnapshot(cmd, file, kubeconfig, addresses)
			if err != nil {
				return err
			}
			r, err := explain.Explain(snap, q)
			if errors.Is(err, explain.ErrInput) {
				return exitError{code: 2, msg: err.Error()}
			}
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return explain.WriteText(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "the manifests, or - for standard input")
	f.StringVar(&kubeconfig, "kubeconfig", "", "read the objects from the cluster this kubeconfig reaches (read only)")
	f.StringVar(&addresses, "addresses", addressesLab, "with -f, where addresses come from: lab or objects (as for render)")
	f.StringVar(&q.From, "from", "", "the source: NAMESPACE/POD or an IP address")
	f.StringVar(&q.To, "to", "", "the destination: NAMESPACE/POD or an IP address")
	f.IntVar(&port, "port", 0, "the destination port")
	f.StringVar(&protocol, "protocol", "TCP", "TCP, UDP or SCTP")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.MarkFlagRequired("port")
	return cmd
}

// explainSnapshot reads the objects from the manifests or the cluster.
func explainSnapshot(cmd *cobra.Command, file, kubeconfig, addresses string) (*cluster.Snapshot, error) {
	if file != "" {
		if addresses != addressesLab && addresses != addressesObjects {
			return nil, exitError{code: 2, msg: fmt.Sprintf("--addresses %q: want %s or %s", addresses, addressesLab, addressesObjects)}
		}
		s, err := readScenario(cmd, file)
		if err != nil {
			return nil, err
		}
		snap, err := renderSnapshot(s, addresses)
		if err != nil {
			return nil, invalid(file, err)
		}
		return snap, nil
	}
	client, err := kubeClient(kubeconfig, "kube-fence-explain")
	if err != nil {
		return nil, err
	}
	cnps, err := policyClient(kubeconfig, "kube-fence-explain")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	snap, warnings, err := lister.Snapshot(ctx, client, cnps)
	if err != nil {
		return nil, fmt.Errorf("read the cluster: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "kube-fence explain: warning: left out: %s\n", w)
	}
	return snap, nil
}
