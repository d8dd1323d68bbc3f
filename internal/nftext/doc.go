// Package nftext renders nf_tables rule expressions, as decoded by
// github.com/google/nftables/expr, as the text `nft list` prints, for
// example `ct state established,related accept`, `fib daddr type local`,
// `meta skuid 0`, `ip saddr @myset` or, for rules iptables-nft wrote with
// xtables extensions, `xt match "conntrack"`.
//
// The renderer is pure: it follows which expression loaded each register and
// formats the constant a later cmp, lookup or range compares it with by that
// field's type. Patterns it does not recognise are printed in nft's raw
// syntax (`@nh,8,8 & 0xfc == 0xb8`) or as `[name]`, never dropped, so a
// reader always sees that something is there.
package nftext
