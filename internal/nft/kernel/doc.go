// Package kernel is the netlink side of kube-fence's table: a Conn sends
// the transactions package nft encodes (one batch on kube-fence's own
// socket, with the table's owner and persist flags), reads the table back
// into nft's model (Read, Verify, and VerifyApplied for what one
// transaction changed) and repairs it. It owns the table's netlink sockets
// in one network namespace; nothing else writes the table.
package kernel
