// Package guard runs the doctor on a node for good: it watches the node's
// nftables ruleset (report-only unless told to repair) and tells operators
// what it finds through Prometheus metrics, Kubernetes Events on the Node
// and a health endpoint. deploy/doctor/ runs it as a DaemonSet.
package guard
