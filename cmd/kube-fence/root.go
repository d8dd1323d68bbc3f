package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/version"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kube-fence",
		Short: "Kubernetes NetworkPolicy enforced with native nftables, in a table of its own",
		Long: `kube-fence enforces Kubernetes NetworkPolicy with native nftables over netlink, in a
table it owns (inet kube-fence), so no foreign rule can break it and it can break no
iptables-nft based tool. It never runs the iptables or nft binaries to enforce.

  agent    enforce the cluster's NetworkPolicies on this node (the DaemonSet)
  lab      prove enforcement with real packets in network namespaces
  doctor   find, explain and safely repair foreign nftables rules that break iptables-nft tools
  render   print the table kube-fence would program on a node, in nft syntax
  explain  say whether a connection is allowed, and which policies and rules decide it
  bench    measure sync, incremental changes and the datapath at cluster scale`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newAgentCmd(), newLabCmd(), newDoctorCmd(), newRenderCmd(), newExplainCmd(), newBenchCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the kube-fence version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.String())
			return err
		},
	}
}
