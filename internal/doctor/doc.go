// Package doctor finds the foreign nftables rules that break iptables-nft
// based tools (K3s's embedded kube-router, kube-proxy in iptables mode,
// Docker, Calico), explains per iptables-nft version what each does, guesses
// who wrote them, and checks the node's iptables toolchain.
//
// Scanning is read-only and uses netlink only: no nft or iptables binary is
// run. Scan reads and reports; Fix and Rollback repair and undo; Check runs
// them once or, with Watch, after every ruleset change. The rewrites live in
// the repair subpackage, the version model in iptmodel, the rule reader in
// nlrules, the toolchain checks in toolchain, and guard runs Watch on a node
// with metrics and Events.
package doctor
