// Command kube-fence enforces Kubernetes NetworkPolicy with native nftables,
// diagnoses the foreign rules that break iptables-nft based tools, and proves
// enforcement with real packets in a lab of network namespaces.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		stderr := root.ErrOrStderr()
		var ex exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(stderr, "kube-fence:", ex.msg)
			}
			os.Exit(ex.code)
		}
		fmt.Fprintln(stderr, "kube-fence:", err)
		os.Exit(1)
	}
}

// exitError ends the command with a specific exit status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
