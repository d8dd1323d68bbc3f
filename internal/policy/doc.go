// Package policy compiles Kubernetes NetworkPolicies into the plan one node
// enforces (Compile), and holds a deliberately simple reference evaluator
// (Allowed) that the tests and the lab use as the oracle to cross-check that
// plan, plus the API server's validation of a NetworkPolicy (Validate).
//
// Compile is pure: a snapshot and a node name in, a plan out, no I/O, the
// same output for the same input. Compiler is the same compiler kept between
// calls, for the agent: objects are set and deleted one at a time and Plan
// recomputes only what they can affect, returning exactly Compile's plan. docs/policy-semantics.md lists the
// choices made where the Kubernetes documentation leaves room, and the tests
// that pin them.
package policy
