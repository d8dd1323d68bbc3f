// Package agent is the node agent: it watches the cluster through the API
// server, hands every change to its node's enforcement pipeline
// (internal/enforce), which keeps kube-fence's nftables table in the kernel
// equal to what the NetworkPolicies require, and reports what the pipeline
// did through health endpoints, metrics, logs and events. The agent only
// schedules: debounce, backoff, the verification timer and nftables change
// notifications. ClusterNetworkPolicies, a CRD many clusters lack, are
// watched while discovery says the API server serves them (cnpwatch.go).
//
// One goroutine owns the pipeline and is the only writer. Changes
// are coalesced for a few milliseconds, never minutes. After start-up nothing
// but a signal ends the process: a failed apply keeps the last committed table
// (the kernel applies a transaction entirely or not at all), marks the node
// degraded and retries with backoff.
package agent
