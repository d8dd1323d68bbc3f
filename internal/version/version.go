// Package version reports which kube-fence build is running.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time with -ldflags "-X .../internal/version.Version=v1.2.3".
var Version = "dev"

// String returns the version, the commit it was built from when known, and
// the Go version.
func String() string {
	commit := "unknown"
	dirty := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
	}
	return fmt.Sprintf("kube-fence %s (commit %s%s, %s %s/%s)", Version, commit, dirty, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
