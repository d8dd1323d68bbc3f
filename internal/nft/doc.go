// Package nft is kube-fence's model of its nftables table, with no I/O:
// Render (pure) builds the desired Table from a plan.Plan; Diff compares two
// Tables and lists the differences in words plus the operations that remove
// them; EncodeDelta turns those operations into the netlink messages of one
// transaction; Text prints a Table in nft syntax for humans and for
// `nft -f`. A Renderer renders like Render but shares with the previous table
// every object a new plan did not change, which Diff then skips in constant
// time: a small change costs a small render, diff and transaction however
// big the table. Package kernel (internal/nft/kernel) sends the
// transactions, reads the table back and repairs it.
//
// The table's rules are fixed and its data changes: per-pod and per-peer facts
// live in sets and verdict maps, so a pod appearing or a label changing is a
// handful of element updates, and the per-packet cost is a few lookups
// whatever the number of policies. docs/design.md describes the layout.
//
// Nothing here writes outside the one table kube-fence owns, and nothing runs
// the nft or iptables binaries.
package nft
