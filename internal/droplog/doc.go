// Package droplog reads the kernel's own record of each packet kube-fence's
// table dropped: the table logs a drop to an NFLOG group with a prefix that
// says where it happened (the source pod's egress, the destination pod's
// ingress, or the default deny of unknown addresses), and this package turns
// each record into a Record (family, protocol, addresses, ports, side).
// Package listen reads them from the kernel.
//
// The prefix is the contract between the table and this package; Prefix and
// ParsePrefix are its two halves. Attributing a record to pods and policies
// needs the cluster and is left to the caller.
package droplog
