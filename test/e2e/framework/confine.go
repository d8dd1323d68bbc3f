package framework

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Confinement is how a container runtime confines a container's process,
// reduced to what matters to the agent: its own PID namespace with its own
// /proc (hostPID false), a read-only root filesystem, no_new_privs, and only
// the capabilities the manifest adds, in every capability set. Tests run the
// agent under the confinement of deploy/'s DaemonSet, so a capability, a
// write to disk or a look at another process's /proc that the agent needs
// but the manifest does not grant fails the tests, not a cluster.
//
// The network namespace is the one the process is started in (the node's,
// as hostNetwork gives). It is built from util-linux's unshare and setpriv
// and mount, which every Debian system has.
type Confinement struct {
	// Capabilities are capability names without the CAP_ prefix, as in a
	// securityContext (NET_ADMIN). Every other capability is dropped.
	Capabilities []string
	// ReadOnlyRoot remounts / read-only in the process's mount namespace.
	ReadOnlyRoot bool
	// NoNewPrivs sets no_new_privs (allowPrivilegeEscalation: false).
	NoNewPrivs bool
}

// ConfinementOf reads a container's securityContext. It fails for what a
// Confinement cannot reproduce: a privileged container (which gets every
// capability) or one that does not drop ALL (which gets the runtime's
// default set, not only its adds).
func ConfinementOf(c *corev1.Container) (Confinement, error) {
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		return Confinement{}, fmt.Errorf("container %s: no securityContext.capabilities", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		return Confinement{}, fmt.Errorf("container %s: privileged", c.Name)
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		return Confinement{}, fmt.Errorf("container %s: capabilities.drop %v does not drop ALL", c.Name, sc.Capabilities.Drop)
	}
	conf := Confinement{
		ReadOnlyRoot: sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		NoNewPrivs:   sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
	}
	for _, cp := range sc.Capabilities.Add {
		conf.Capabilities = append(conf.Capabilities, strings.TrimPrefix(string(cp), "CAP_"))
	}
	return conf, nil
}

// Wrap returns argv prefixed with the commands that confine it. The process
// becomes PID 1 of a new PID namespace; unshare stays its parent, waits for
// it, and passes SIGTERM on when it is itself killed, so signals to the
// process group behave as they do for a container.
func (c Confinement) Wrap(argv []string) []string {
	caps := "-all"
	for _, cp := range c.Capabilities {
		caps += ",+" + strings.ToLower(cp)
	}
	setpriv := []string{"setpriv", "--bounding-set=" + caps, "--inh-caps=-all", "--ambient-caps=-all"}
	if c.NoNewPrivs {
		setpriv = append(setpriv, "--no-new-privs")
	}
	script := `exec "$@"`
	if c.ReadOnlyRoot {
		script = `mount -o remount,bind,ro / && exec "$@"`
	}
	out := []string{"unshare", "--pid", "--fork", "--kill-child=SIGTERM", "--mount-proc", "--propagation=private",
		"--", "sh", "-c", script, "sh"}
	out = append(out, setpriv...)
	out = append(out, "--")
	return append(out, argv...)
}
