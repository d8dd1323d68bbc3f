// Package nlrules reads the nf_tables ruleset of a network namespace over
// netlink, keeping every rule's expressions as the exact bytes the kernel
// holds, and writes rule replacements back as one atomic transaction.
//
// github.com/google/nftables silently drops expressions it cannot decode
// (rt, socket, byteorder, tproxy, ...) and fails a whole dump on one it
// decodes badly, so the doctor (which must report every rule and restore rules
// byte for byte) and the dataplane (which must see every expression of its own rules) read them here. Expressions are decoded on demand
// with google/nftables' types; an expression it does not know is kept as
// nftext.Undecoded.
package nlrules
