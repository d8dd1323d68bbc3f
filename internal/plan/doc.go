// Package plan holds a node's enforcement plan: the contract between the
// policy compiler, which produces it from Kubernetes objects, and the
// dataplane, which programs it. It imports only the standard library and
// the address-set package, so the dataplane that consumes a plan knows
// nothing of Kubernetes (internal/deps_test.go keeps it that way).
package plan
