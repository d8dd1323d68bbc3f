// Package conformance runs the network-policy-api conformance suite
// (sigs.k8s.io/network-policy-api v0.3.0, its conformance package) against
// the node hack/node.sh brings up; see conformance_test.go and
// docs/conformance.md. It is a module of its own so that the suite's
// dependencies (controller-runtime, testify) stay out of the project's
// go.mod: nothing kube-fence ships links them, and `go test ./...` of the
// project does not run it (`make e2e-npapi` does).
package conformance
