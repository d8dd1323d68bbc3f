// Package conntrack cuts the connections a new policy denies: it lists the
// conntrack entries of a network namespace over netlink
// (github.com/ti-mo/conntrack) and deletes, one by one, those whose flow a
// verdict function now refuses, so the next packet of such a connection is
// judged by the table as a new flow. It knows nothing of policies or plans:
// the caller passes the verdict as a func(Flow) bool.
package conntrack
