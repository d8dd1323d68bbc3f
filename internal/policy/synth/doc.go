// Package synth generates deterministic synthetic clusters (namespaces,
// nodes, pods with labels, named ports and dual-stack addresses, and a mix of
// NetworkPolicies) for benchmarks and scale tests of the policy pipeline.
//
// The same Config always yields the same snapshot, so benchmark numbers taken
// on different days compare.
package synth
