// Package deps holds only a test: the dependency rules between kube-fence's
// packages that docs/design.md states, checked with `go list` so that a
// broken rule fails the build's tests rather than a review.
package deps
