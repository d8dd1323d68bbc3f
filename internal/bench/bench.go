package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/internal/policy/synth"
)

// Size is one synthetic cluster.
type Size struct {
	Name   string       `json:"name"`
	Config synth.Config `json:"config"`
}

// size builds a cluster shaped like the ones the issue names: pods spread
// over nodes of about 100 pods, 100 pods per namespace, 110 pods on the
// measured node.
func size(pods, policies int) Size {
	return Size{
		Name: fmt.Sprintf("%dk pods / %d policies", pods/1000, policies),
		Config: synth.Config{Pods: pods, Policies: policies, Nodes: max(pods/100, 2), Namespaces: max(pods/100, 1),
			PodsOnNode: 110, Seed: 1},
	}
}

// Presets are the sizes of `kube-fence bench --size`.
var Presets = map[string][]Size{
	// small runs in CI: it keeps the command working, and says nothing
	// about speed.
	"small": {size(1000, 100)},
	// full ends at 100k pods, past the largest K3s clusters, to show how
	// sync time and memory grow.
	"full": {size(1000, 100), size(5000, 500), size(10000, 1000), size(20000, 2000), size(50000, 5000), size(100000, 10000)},
}

// Config says what to measure.
type Config struct {
	Sizes []Size
	// Runs is how many times each full compile and apply is repeated.
	Runs int
	// Changes measures incremental changes at every size, each repeated
	// ChangeRuns times.
	Changes    bool
	ChangeRuns int
	// Datapath measures connection setup and throughput in the lab; zero
	// Policies skips it.
	Datapath DatapathConfig
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Sizes) == 0 && len(c.Datapath.Policies) == 0 {
		errs = append(errs, errors.New("nothing to measure: no sizes and no datapath policy counts"))
	}
	if c.Runs < 1 || c.ChangeRuns < 1 {
		errs = append(errs, fmt.Errorf("runs %d and change runs %d: want at least 1", c.Runs, c.ChangeRuns))
	}
	if len(c.Sizes) > 0 {
		if _, err := exec.LookPath("nft"); err != nil {
			errs = append(errs, fmt.Errorf("the nft binary (Debian package nftables) is needed as the reference: %w", err))
		}
	}
	errs = append(errs, c.Datapath.validate())
	return errors.Join(errs...)
}

// Results is everything one run measured.
type Results struct {
	Machine     Machine          `json:"machine"`
	Started     time.Time        `json:"started"`
	Took        string           `json:"took"`
	Runs        int              `json:"runs"`
	Sync        []SyncResult     `json:"sync"`
	Changes     []ChangeResult   `json:"changes"`
	Datapath    []DatapathResult `json:"datapath,omitempty"`
	DatapathCfg DatapathConfig   `json:"datapathConfig"`
}

// options are the compiler options the agent runs with by default.
var options = policy.Options{DefaultDenyUnknown: true}

// Run measures what cfg asks for. It needs root (network namespaces,
// nftables) and leaves nothing behind. When a part fails, the results of
// the parts before it come back with the error.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &Results{Machine: describeMachine(), Started: time.Now(), Runs: cfg.Runs, DatapathCfg: cfg.Datapath}
	log := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
		}
	}
	for _, sz := range cfg.Sizes {
		if err := ctx.Err(); err != nil {
			return res.done(), err
		}
		log("%s: generating the cluster", sz.Name)
		r, err := measureSync(ctx, sz, cfg.Runs, log)
		if err != nil {
			return res.done(), fmt.Errorf("%s: %w", sz.Name, err)
		}
		res.Sync = append(res.Sync, r)
		if cfg.Changes {
			cs, err := measureChanges(ctx, sz, cfg.ChangeRuns, log)
			if err != nil {
				return res.done(), fmt.Errorf("%s: changes: %w", sz.Name, err)
			}
			res.Changes = append(res.Changes, cs...)
		}
	}
	if len(cfg.Datapath.Policies) > 0 {
		dp, err := measureDatapath(ctx, cfg.Datapath, log)
		if err != nil {
			return res.done(), fmt.Errorf("datapath: %w", err)
		}
		res.Datapath = dp
	}
	return res.done(), nil
}

func (r *Results) done() *Results {
	r.Machine.LoadAfter = loadAverage()
	r.Took = time.Since(r.Started).Round(time.Second).String()
	return r
}
