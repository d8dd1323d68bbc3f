// Package policy compiles Kubernetes NetworkPolicies into the plan one node
// enforces, and holds a deliberately simple reference evaluator the tests use
// to cross-check that plan.
//
// Everything here is pure: a snapshot and a node name in, a plan out, no I/O,
// the same output for the same input.
package policy
