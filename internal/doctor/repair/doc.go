// Package repair rewrites, in place and only where the result is exactly
// equivalent for every packet, native nftables expressions that
// iptables-nft cannot decode into the xtables form iptables itself writes
// (ct state -> conntrack, ct mark -> connmark, fib daddr type -> addrtype,
// ip dscp -> dscp). Each rule keeps its chain and position; all rewrites go
// in one atomic nf_tables transaction, guarded by the ruleset generation the
// plan was made from, after a rollback file holding the original rules byte
// for byte has been written and synced.
package repair
