package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kube-fence/kube-fence/internal/bench"
)

// benchDefaults are the settings of each --size.
var benchDefaults = map[string]bench.Config{
	"small": {Runs: 1, Changes: true, ChangeRuns: 2,
		Datapath: bench.DatapathConfig{Policies: []int{0, 100}, CNPs: []int{10}, Rounds: 1, Connects: 200, Stream: 200 * time.Millisecond}},
	"full": {Runs: 5, Changes: true, ChangeRuns: 20,
		Datapath: bench.DatapathConfig{Policies: []int{0, 1, 1000, 10000}, CNPs: []int{10, 100}, Rounds: 5, Connects: 2000, Stream: 2 * time.Second}},
}

func newBenchCmd() *cobra.Command {
	var (
		sizeName, parts, policies, cnps, jsonFile, plotFile, replot string
		podsList, cpuProfile                                        string
		runs, changeRuns, rounds, connects, datapathAudit           int
		datapathLog                                                 bool
		stream                                                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench [--size small|full]",
		Short: "Measure sync, incremental changes and the datapath at cluster scale, against nft -f",
		Long: `Bench measures kube-fence with the real pipeline and the real kernel, in network
namespaces it creates and removes, on synthetic clusters (deterministic from a seed:
pods of 25 apps and 3 tiers with named ports over namespaces and nodes, 110 pods on the
measured node, NetworkPolicies mixing pod and namespace selectors, ipBlocks with except,
named ports and port ranges):

  sync      compile the node's plan; apply its whole table over netlink and read it back;
            nft -f loading the same table as text, in the same run, as the reference
  changes   a pod added (on another node and on this one), a pod relabelled into a
            selector, a policy added, a namespace relabelled: the time from the change to
            the committed kernel state and the size of the netlink transaction
  datapath  TCP connect time and throughput between two lab pods with 0, 1, 1k and 10k
            NetworkPolicies selecting them, and with 10 and 100 admin
            ClusterNetworkPolicies selecting them instead, as ratios to no policy

--size small (1k pods, one run) keeps the command working in CI and says nothing about
speed; --size full (1k to 100k pods, five runs) is the run docs/benchmarks.md reports.
Every number is a median with its range; the tables are Markdown. It needs root.`,
		Example: `  kube-fence bench --size full --json bench.json --plot docs/benchmarks-sync.png > tables.md
  kube-fence bench --parts datapath --rounds 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replot != "" {
				return replotBench(cmd, replot, plotFile)
			}
			cfg, ok := benchDefaults[sizeName]
			if !ok {
				return exitError{code: 2, msg: fmt.Sprintf("--size %q: want small or full", sizeName)}
			}
			cfg.Sizes = bench.Presets[sizeName]
			if cmd.Flags().Changed("pods") {
				sizes, err := selectSizes(cfg.Sizes, sizeName, podsList)
				if err != nil {
					return exitError{code: 2, msg: err.Error()}
				}
				cfg.Sizes = sizes
			}
			f := cmd.Flags()
			set := func(name string, dst *int, v int) {
				if f.Changed(name) {
					*dst = v
				}
			}
			set("runs", &cfg.Runs, runs)
			set("change-runs", &cfg.ChangeRuns, changeRuns)
			set("rounds", &cfg.Datapath.Rounds, rounds)
			set("connects", &cfg.Datapath.Connects, connects)
			if f.Changed("stream") {
				cfg.Datapath.Stream = stream
			}
			cfg.Datapath.NoDropLog = !datapathLog
			cfg.Datapath.AuditPolicies = datapathAudit
			if f.Changed("datapath-policies") {
				list, err := intList(policies)
				if err != nil {
					return exitError{code: 2, msg: "--datapath-policies: " + err.Error()}
				}
				cfg.Datapath.Policies = list
			}
			if f.Changed("datapath-cnps") {
				list, err := cnpCounts(cnps)
				if err != nil {
					return exitError{code: 2, msg: "--datapath-cnps: " + err.Error()}
				}
				cfg.Datapath.CNPs = list
			}
			if err := selectParts(&cfg, parts); err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			if err := cfg.Validate(); err != nil {
				return exitError{code: 2, msg: err.Error()}
			}
			if err := requireRoot(); err != nil {
				return err
			}
			if cpuProfile != "" {
				// A profile of the whole run shows where an incremental change
				// spends its time (docs/benchmarks.md reads one).
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			cfg.Progress = cmd.ErrOrStderr()
			res, err := bench.Run(ctx, cfg)
			if res != nil && (len(res.Sync) > 0 || len(res.Datapath) > 0) {
				// What was measured before a failure is still worth having.
				if werr := writeBench(cmd, res, jsonFile, plotFile); err == nil {
					err = werr
				}
			}
			if err != nil && ctx.Err() != nil {
				return exitError{code: 130, msg: "interrupted; everything the bench created was removed"}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&sizeName, "size", "small", "small (CI) or full (the documented run)")
	f.StringVar(&parts, "parts", "sync,changes,datapath", "what to measure, comma-separated: sync, changes, datapath")
	f.IntVar(&runs, "runs", 0, "repetitions of each full compile and apply (default: 1 small, 5 full)")
	f.IntVar(&changeRuns, "change-runs", 0, "repetitions of each incremental change (default: 2 small, 20 full)")
	f.StringVar(&policies, "datapath-policies", "", "policy counts the datapath compares, the first 0 (default: 0,100 small; 0,1,1000,10000 full)")
	f.StringVar(&cnps, "datapath-cnps", "", "ClusterNetworkPolicy counts the datapath measures beside them; 0 measures none (default: 10 small; 10,100 full)")
	f.IntVar(&rounds, "rounds", 0, "datapath rounds (default: 1 small, 5 full)")
	f.BoolVar(&datapathLog, "datapath-log-denied", true, "the datapath's tables log denied packets, as the agent's --log-denied does; false renders plain drops")
	f.IntVar(&datapathAudit, "datapath-audit", 0, "add this many NetworkPolicies in audit mode to every datapath pair (copies of its policies, allowing the measured connection), so the audit chains judge each new connection")
	f.IntVar(&connects, "connects", 0, "timed TCP connects per policy count and round (default: 200 small, 2000 full)")
	f.DurationVar(&stream, "stream", 0, "length of the throughput stream (default: 200ms small, 2s full)")
	f.StringVar(&jsonFile, "json", "", "also write every measurement to this file as JSON")
	f.StringVar(&plotFile, "plot", "", "also draw sync time against cluster size into this PNG file")
	f.StringVar(&podsList, "pods", "", "only the cluster sizes of --size with these pod counts, comma-separated (full: 1000,5000,10000,20000,50000,100000)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "also write a Go CPU profile of the run to this file, for go tool pprof")
	f.StringVar(&replot, "from-json", "", "measure nothing: print the tables (and --plot) of a run saved with --json")
	return cmd
}

// selectSizes keeps the sizes whose pod counts the list names, and says
// which counts the preset has when one is not among them.
func selectSizes(sizes []bench.Size, preset, list string) ([]bench.Size, error) {
	want, err := intList(list)
	if err != nil {
		return nil, fmt.Errorf("--pods: %w", err)
	}
	var out []bench.Size
	for _, n := range want {
		i := slices.IndexFunc(sizes, func(s bench.Size) bool { return s.Config.Pods == n })
		if i < 0 {
			var have []string
			for _, s := range sizes {
				have = append(have, strconv.Itoa(s.Config.Pods))
			}
			return nil, fmt.Errorf("--pods %d: --size %s measures %s pods", n, preset, strings.Join(have, ", "))
		}
		out = append(out, sizes[i])
	}
	return out, nil
}

// replotBench prints the tables and draws the plot of a saved run.
func replotBench(cmd *cobra.Command, file, plotFile string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	var res bench.Results
	if err := json.Unmarshal(b, &res); err != nil {
		return exitError{code: 2, msg: fmt.Sprintf("%s: %v", file, err)}
	}
	return writeBench(cmd, &res, "", plotFile)
}

// selectParts turns off what --parts leaves out.
func selectParts(cfg *bench.Config, parts string) error {
	want := strings.Split(parts, ",")
	for _, p := range want {
		if !slices.Contains([]string{"sync", "changes", "datapath"}, p) {
			return fmt.Errorf("--parts: %q is not sync, changes or datapath", p)
		}
	}
	if !slices.Contains(want, "sync") && !slices.Contains(want, "changes") {
		cfg.Sizes = nil
	}
	cfg.Changes = cfg.Changes && slices.Contains(want, "changes")
	if !slices.Contains(want, "datapath") {
		cfg.Datapath.Policies = nil
	}
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a list of counts", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// cnpCounts parses --datapath-cnps, where 0 alone means none.
func cnpCounts(s string) ([]int, error) {
	list, err := intList(s)
	if err != nil || len(list) == 1 && list[0] == 0 {
		return nil, err
	}
	return list, nil
}

func writeBench(cmd *cobra.Command, res *bench.Results, jsonFile, plotFile string) error {
	if err := bench.Markdown(cmd.OutOrStdout(), res); err != nil {
		return err
	}
	if jsonFile != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", jsonFile, err)
		}
	}
	if plotFile != "" && len(res.Sync) > 0 {
		f, err := os.Create(plotFile)
		if err != nil {
			return err
		}
		if err := bench.Plot(f, res); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", plotFile, err)
		}
	}
	return nil
}
