// Package conformance is the NetworkPolicy conformance suite of kube-fence,
// run with real packets in the lab (internal/lab) through the agent's own
// pipeline (lab.KernelEnforcer: each step's object changes handed to an
// enforce.Pipeline per node, in the node's namespace):
//
//   - TestUpstream: the 48 connectivity cases of the Kubernetes e2e Netpol
//     suite, plus kube-fence's extra change cases, on one node and on two,
//     each probed over IPv4 and IPv6;
//   - TestGenerated: generated cases checked probe by probe against the
//     reference evaluator (a fixed sample by default, all with
//     -conformance.long);
//   - TestOutsideTheAPI*: what the NetworkPolicy API leaves open (loopback,
//     hostNetwork pods, traffic with the node, established connections after
//     a policy change), pinned to kube-fence's behaviour.
//
// docs/conformance.md explains the flags, durations and results.
package conformance
