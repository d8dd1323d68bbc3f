// Package doctor finds the foreign nftables rules that break iptables-nft
// based tools (K3s's embedded kube-router, kube-proxy in iptables mode,
// Docker, Calico), explains per iptables-nft version what each does, guesses
// who wrote them, and checks the node's iptables toolchain.
//
// Scanning is read-only and uses netlink only: no nft or iptables binary is
// run. Repair lives in the repair subpackage; the version model in iptmodel;
// the rule reader in nlrules; the toolchain checks in toolchain.
package doctor
