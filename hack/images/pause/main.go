// Command pause is the pod sandbox's process: it holds the pod's namespaces
// until the runtime stops it, and reaps children when it is the pod's PID 1
// (shareProcessNamespace). Upstream's pause is a small C program; this one is
// static Go so hack/node.sh builds it with the toolchain it already needs.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
