package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
)

// Config is everything the agent can be told. Defaults fills it; Validate
// checks it and says what is wrong with every bad field at once.
type Config struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster config.
	Kubeconfig string
	// NodeName is the node whose pods this agent enforces.
	NodeName string
	// MetricsAddr and HealthAddr are host:port for the Prometheus metrics
	// and the health endpoints; empty disables the server.
	MetricsAddr string
	HealthAddr  string
	// VerifyInterval is how often the table is read back and compared even
	// when nothing happened, a backstop for missed notifications.
	VerifyInterval time.Duration
	// Debounce is how long a burst of changes is collected before one sync.
	Debounce time.Duration
	// MaxDelay bounds how long a steady stream of changes can postpone a sync.
	MaxDelay time.Duration
	// DefaultDenyUnknown isolates addresses of this node's pod CIDRs that
	// belong to no known pod, until their pod is known.
	DefaultDenyUnknown bool
	// Ownership sets the kernel's owner and persist flags on the table.
	Ownership kernel.Ownership
	// CleanupOnExit removes the table when the agent stops. The default
	// leaves it, so pods stay protected during restarts and upgrades.
	CleanupOnExit bool
	// CRDPollInterval is how often the agent asks discovery whether the
	// ClusterNetworkPolicy CRD was installed or removed.
	CRDPollInterval time.Duration
	// DropLog says how the table logs denied packets (--log-denied and
	// the --log-* flags); the agent reads the records and writes one line
	// per denied connection.
	DropLog nft.DropLog
	// ExistingConnections says what a change does to connections open
	// before it that it denies: cut them (the default) or keep them.
	ExistingConnections enforce.ExistingConnections
	// Profiling serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on the metrics listener. Off by default: a heap or CPU
	// profile costs the node CPU and tells whoever can reach the port about
	// the agent's insides.
	Profiling bool
	// NetNSFD makes the agent enforce in another network namespace; 0 for
	// its own. Only tests use it.
	NetNSFD int
}

// Default values, documented in docs/operations.md.
const (
	DefaultMetricsAddr    = "127.0.0.1:9942"
	DefaultHealthAddr     = "127.0.0.1:9943"
	DefaultVerifyInterval = 30 * time.Second
	DefaultDebounce       = 5 * time.Millisecond
	DefaultMaxDelay       = 250 * time.Millisecond
	// DefaultCRDPollInterval starts the ClusterNetworkPolicy watch within
	// a minute of the CRD's installation, with two small GETs a minute.
	DefaultCRDPollInterval = 30 * time.Second
)

// Defaults returns the default configuration. The node name comes from
// NODE_NAME (set from the downward API in the DaemonSet), then the hostname.
func Defaults() Config {
	node := os.Getenv("NODE_NAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	return Config{
		NodeName:            node,
		MetricsAddr:         DefaultMetricsAddr,
		HealthAddr:          DefaultHealthAddr,
		VerifyInterval:      DefaultVerifyInterval,
		Debounce:            DefaultDebounce,
		MaxDelay:            DefaultMaxDelay,
		CRDPollInterval:     DefaultCRDPollInterval,
		DefaultDenyUnknown:  true,
		Ownership:           kernel.OwnershipAuto,
		ExistingConnections: enforce.ExistingCut,
	}
}

// Validate returns every problem with c, or nil.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node-name: empty (set it, or NODE_NAME, or a hostname)"))
	}
	for flag, addr := range map[string]string{"--metrics-bind-address": c.MetricsAddr, "--health-bind-address": c.HealthAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port: %w", flag, addr, err))
		}
	}
	if c.Profiling && c.MetricsAddr == "" {
		errs = append(errs, errors.New("--profiling: the profiles are served on the metrics listener, and --metrics-bind-address is empty"))
	}
	if c.VerifyInterval < time.Second {
		errs = append(errs, fmt.Errorf("--verify-interval: %v is below 1s; notifications already catch changes at once, the interval is only a backstop", c.VerifyInterval))
	}
	if c.Debounce < 0 || c.Debounce > 10*time.Second {
		errs = append(errs, fmt.Errorf("--debounce: %v is not between 0 and 10s", c.Debounce))
	}
	if c.CRDPollInterval < 100*time.Millisecond || c.CRDPollInterval > time.Minute {
		errs = append(errs, fmt.Errorf("--crd-poll-interval: %v is not between 100ms and 1m (the ClusterNetworkPolicy watch must start within a minute of the CRD's installation)", c.CRDPollInterval))
	}
	if c.MaxDelay < c.Debounce {
		errs = append(errs, fmt.Errorf("--max-delay: %v is below --debounce %v", c.MaxDelay, c.Debounce))
	}
	if err := c.DropLog.Defaults().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--log-rate/--log-burst: %w", err))
	}
	if _, err := enforce.ParseExistingConnections(string(c.ExistingConnections)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
