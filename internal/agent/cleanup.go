package agent

import (
	"fmt"
	"io"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	"github.com/kube-fence/kube-fence/internal/nft"
)

// Cleanup removes everything kube-fence created on the node (its table) and
// says so on w. The agent must be stopped first: a running agent owns the
// table and would write it again.
func Cleanup(cfg Config, w io.Writer) error {
	conn, err := kernel.Open(kernel.Options{NetNSFD: cfg.NetNSFD, Ownership: kernel.OwnershipOff})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.DeleteTable(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "removed table inet %s (if it existed)\n", nft.TableName)
	return err
}

// ParseOwnership reads the --table-ownership value: "auto" or "off".
func ParseOwnership(s string) (kernel.Ownership, error) {
	switch s {
	case "auto":
		return kernel.OwnershipAuto, nil
	case "off":
		return kernel.OwnershipOff, nil
	}
	return 0, fmt.Errorf("--table-ownership: %q is not auto or off", s)
}
