// Package scenario reads lab scenarios: multi-document YAML (or JSON) of
// standard Kubernetes Namespace, Pod, Node and NetworkPolicy objects, and
// ClusterNetworkPolicies of the network-policy-api. It
// decodes them strictly, validates them with errors that name the object and
// the field, and turns them into a complete cluster snapshot: implicit
// namespaces created, pods placed on nodes, every pod given its addresses.
//
// The address plan lives here too, as pure data (see Normalize), so that the
// same scenario always yields the same addresses; package topo realises it
// with real links and routes.
package scenario
