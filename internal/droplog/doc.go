// Package droplog is the contract between kube-fence's table and what reads
// the kernel's record of each packet it dropped: the table logs a drop to an
// NFLOG group with a prefix that says where it happened (the source pod's
// egress, the destination pod's ingress, or the default deny of unknown
// addresses; "would-deny" for audit mode), and this package turns each
// record into a Record (protocol, addresses, ports, side). It does no I/O:
// package listen reads the records from the kernel.
//
// The prefix is the contract between the table and this package; Prefix and
// ParsePrefix are its two halves. Attributing a record to pods and policies
// needs the cluster and is left to the caller.
package droplog
