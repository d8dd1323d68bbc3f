// Package peer measures kube-fence against a peer enforcer, kube-router's
// network policy controller, in one sitting: the same synthetic cluster
// (internal/policy/synth) created through a real API server
// (test/e2e/framework), each controller started in turn in the node's
// network namespace, rounds alternating between them, and the same four
// numbers read from each: a NetworkPolicy created in the API to its rules in
// the kernel, a new pod on the node to its rules, a full sync, and resident
// memory. docs/benchmarks-peer.md has the results and how they were taken.
//
// The measurement is behind the build tag `peer` and runs with
// `make bench-peer`, which first builds kube-router from the Go module proxy
// (hack/build-kube-router.sh); `go test ./...` compiles and tests only the
// pure helpers here (statistics, reading iptables-save), so CI neither
// depends on a third-party module the proxy may stop serving nor spends half
// an hour measuring.
package peer
