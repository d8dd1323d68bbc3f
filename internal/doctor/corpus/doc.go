// Package corpus is the table of foreign nftables rules the doctor's
// differential tests program into throwaway namespaces: native expressions
// of every kind the kernel accepts, mixed forms, and iptables-written forms.
// It is data only, shared by the tests of the doctor's packages.
package corpus
