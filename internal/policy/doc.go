// Package policy compiles Kubernetes NetworkPolicies into the plan one node
// enforces (Compile), and holds a deliberately simple reference evaluator
// (Allowed) that the tests and the lab use as the oracle to cross-check that
// plan, plus the API server's validation of a NetworkPolicy (Validate).
//
// Everything here is pure: a snapshot and a node name in, a plan out, no I/O,
// the same output for the same input. docs/policy-semantics.md lists the
// choices made where the Kubernetes documentation leaves room, and the tests
// that pin them.
package policy
