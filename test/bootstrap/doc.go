// Package bootstrap tests hack/lib.sh's ensure_go, the step that lets the
// README's two commands run on a fresh Debian 12 machine with no Go: it must
// use a Go the user has when it is new enough, never replace one, and
// otherwise install the pinned toolchain from the Go module proxy, checked
// against its pinned SHA-256, without root.
package bootstrap
