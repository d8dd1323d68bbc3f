package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Address modes of kube-fence render.
const (
	addressesLab     = "lab"
	addressesObjects = "objects"
)

func newRenderCmd() *cobra.Command {
	var (
		file, node, addresses string
		defaultDenyUnknown    = true
	)
	var logFlags *dropLogFlags
	cmd := &cobra.Command{
		Use:   "render -f MANIFESTS [--node NAME]",
		Short: "Print the nftables table kube-fence would program on a node, in nft syntax",
		Long: `Render reads Namespaces, Pods, Nodes, NetworkPolicies and ClusterNetworkPolicies
(policy.networking.k8s.io v1beta1 or v1alpha2; the lab's scenario format:
Kubernetes YAML or JSON, several documents separated by ---, or a List such as
kubectl get -o yaml prints), compiles the policies for one node, and prints the table
"inet kube-fence" exactly as kube-fence programs it over netlink, in nft syntax. Nothing
is changed on this machine and no privileges are needed.

The output is what to read to understand a node's enforcement, and valid input for nft:
"nft -c -f FILE" checks it, and "nft -f FILE" in a scratch network namespace loads the
very table the agent would hold (the tests compare both read back from the kernel).
Every denied packet ends in a drop chain (drop-egress, drop-ingress, drop-unknown-address)
that logs it to an NFLOG group under a rate limit, as the agent's --log-denied does; the
--log-* flags take the agent's values.

Addresses (--addresses):
  lab      as the lab builds the scenario: pods without status.podIPs get addresses from
           their node's pod CIDR, nodes get the lab's addresses. The table is the one
           "kube-fence lab run" programs on the node (which runs with
           --default-deny-unknown=false).
  objects  only what the objects say, as the agent sees them through the API server: node
           addresses from status.addresses, pods without addresses are not enforced.

When ClusterNetworkPolicies select pods of the node, the table is preceded by nft
comments (# lines) giving, for each such pod and direction, the tiers in the order the
packet meets them: the admin rules (policy, priority, rule, action), then the
NetworkPolicies or, when none isolates the pod, the baseline rules and the default allow.
Each rule in the table carries the same names as a comment.

Exit status: 0 when the table was printed; 2 for invalid input (the message names the
object and the field) or an unknown node. Policy parts that cannot be enforced are listed
on standard error (they fail closed); the rest is in the table.`,
		Example: `  kube-fence render -f scenario.yaml
  kubectl get namespaces,pods,nodes,networkpolicies,clusternetworkpolicies -A -o yaml > cluster.yaml
  kube-fence render -f cluster.yaml --node worker-1 --addresses objects > worker-1.nft
  nft -c -f worker-1.nft`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addresses != addressesLab && addresses != addressesObjects {
				return exitError{code: 2, msg: fmt.Sprintf("--addresses %q: want %s or %s", addresses, addressesLab, addressesObjects)}
			}
			s, err := readScenario(cmd, file)
			if err != nil {
				return err
			}
			snap, err := renderSnapshot(s, addresses)
			if err != nil {
				return invalid(file, err)
			}
			if node, err = pickNode(snap, node); err != nil {
				return err
			}
			log := logFlags.value()
			if err := log.Defaults().Validate(); err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			pl, table := enforce.Preview(snap, node, policy.Options{DefaultDenyUnknown: defaultDenyUnknown}, log)
			for _, p := range pl.Problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "kube-fence render: warning: %s\n", p)
			}
			if _, err := io.WriteString(cmd.OutOrStdout(), nft.TiersText(pl)); err != nil {
				return err
			}
			return nft.WriteText(cmd.OutOrStdout(), table)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "the manifests, or - for standard input")
	f.StringVar(&node, "node", "", "the node to render for (default: the only node of the manifests)")
	f.StringVar(&addresses, "addresses", addressesLab, "where addresses come from: lab or objects (see above)")
	f.BoolVar(&defaultDenyUnknown, "default-deny-unknown", defaultDenyUnknown,
		"isolate addresses of the node's pod CIDRs that belong to no known pod, as the agent does by default")
	logFlags = addDropLogFlags(f)
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// renderSnapshot converts the manifests into the snapshot the compiler
// reads, with the lab's address plan or with the objects' own addresses.
func renderSnapshot(s *scenario.Scenario, addresses string) (*cluster.Snapshot, error) {
	if addresses == addressesLab {
		return s.Snapshot()
	}
	return s.Objects()
}

// pickNode returns the node to render for: the one asked for, which must
// exist (as a Node object or as the node of a pod), or the only one there is.
func pickNode(snap *cluster.Snapshot, asked string) (string, error) {
	var names []string
	for _, n := range snap.Nodes {
		names = append(names, n.Name)
	}
	for _, p := range snap.Pods {
		if p.NodeName != "" {
			names = append(names, p.NodeName)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	switch {
	case asked != "" && slices.Contains(names, asked):
		return asked, nil
	case asked != "":
		return "", exitError{code: 2, msg: fmt.Sprintf("--node %q: no such node in the manifests (nodes: %s)", asked, listOrNone(names))}
	case len(names) == 1:
		return names[0], nil
	}
	return "", exitError{code: 2, msg: fmt.Sprintf("--node: required, the manifests name %d nodes (%s)", len(names), listOrNone(names))}
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
