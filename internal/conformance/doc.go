// Package conformance holds what the NetworkPolicy conformance suite
// (test/conformance) runs on the lab: the Kubernetes e2e "Netpol" model
// (namespaces x, y, z; pods a, b, c; ports 80 and 81 over TCP, UDP and
// SCTP), the upstream suite's 48 connectivity cases written as steps with
// their expected truth tables, a generator of further cases in the spirit of
// Cyclonus, and a Runner that applies a step to a running lab, probes it and
// compares every probe with its expectation: the upstream table where the
// case states one, the reference evaluator (policy.Allowed) everywhere else.
//
// It also holds the ClusterNetworkPolicy cases of the network-policy-api's
// conformance suite (CNPUpstream) on that suite's own model (HousesModel),
// with the upstream manifests embedded in its module; for now they are
// judged by the tiers' reference evaluator (policy.Decide) only.
//
// Everything here but Runner is pure: the cases and the generator are data,
// deterministic from their inputs, so they are unit-tested without root.
package conformance
