// Package toolchain inventories the node's iptables toolchain: every
// iptables binary (on PATH, the -legacy/-nft variants, K3s's bundled copies
// under /var/lib/rancher/k3s/data/*/bin/aux), its version and backend,
// legacy xtables tables living beside nf_tables ones (mixed backends), and
// the chains and ipsets kube-router leaves behind after a migration.
package toolchain
