// Package explain answers "why is this connection allowed or denied?" for
// `kube-fence explain`: it resolves the two ends (a pod by namespace/name or
// an address) in a cluster snapshot, asks the policy core's reference
// evaluator once per address family the ends share, and turns its
// attribution (the isolating policies, the rules that allow, the nearest
// miss) into a stable JSON document and a short text.
//
// It reads the policies, never the kernel: what it says is what the policies
// mean. The conformance suite checks that meaning against real packets in the
// lab on every probe, through Explain.
package explain
