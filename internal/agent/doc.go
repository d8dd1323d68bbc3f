// Package agent is the node agent: it watches the cluster through the API
// server, compiles the NetworkPolicies for its node on every change, keeps
// kube-fence's nftables table in the kernel equal to the result, and reports
// what it does through health endpoints, metrics, logs and events.
//
// One goroutine owns the netlink connection and is the only writer. Changes
// are coalesced for a few milliseconds, never minutes. After start-up nothing
// but a signal ends the process: a failed apply keeps the last committed table
// (the kernel applies a transaction entirely or not at all), marks the node
// degraded and retries with backoff.
package agent
