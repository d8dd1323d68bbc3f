package conformance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/conformance"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/topo"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

var (
	long = flag.Bool("conformance.long", os.Getenv("KUBE_FENCE_CONFORMANCE") == "long",
		"run every generated case on every layout (also set by KUBE_FENCE_CONFORMANCE=long)")
	seed        = flag.Uint64("conformance.seed", 1, "seed of the case generator")
	count       = flag.Int("conformance.cases", 360, "how many cases the generator makes (the long mode runs them all)")
	sample      = flag.Int("conformance.sample", 40, "how many generated cases the fast mode runs")
	timeout     = flag.Duration("conformance.timeout", 400*time.Millisecond, "probe timeout: a blocked probe costs this long")
	parallel    = flag.Int("conformance.parallel", 256, "probes in flight at once")
	reportTo    = flag.String("conformance.report", "", "write the results as Markdown to this file")
	mixed       = flag.Int("conformance.mixed", 240, "how many mixed ClusterNetworkPolicy + NetworkPolicy cases the generator makes (the long mode runs them all)")
	mixedSample = flag.Int("conformance.mixed-sample", 10, "how many mixed cases the fast mode runs")
	onlyFlag    = flag.String("conformance.only", "", "run only these generated cases (comma-separated names such as mix-118,gen-007), to replay a failure")
)

// variant is one lab layout the suites run on.
type variant struct {
	Name   string
	Nodes  int
	Layout topo.Layout
	// Existing is the enforcer's --existing-connections; "" is the default.
	Existing enforce.ExistingConnections
}

var (
	oneNode  = variant{Name: "1 node", Nodes: 1, Layout: topo.Bridge}
	twoNodes = variant{Name: "2 nodes", Nodes: 2, Layout: topo.Bridge}
	routed   = variant{Name: "2 nodes routed", Nodes: 2, Layout: topo.Routed}
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *reportTo != "" {
		if err := os.WriteFile(*reportTo, []byte(results.markdown()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write the report:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startLab builds the upstream model for a variant with the real enforcer.
func startLab(t *testing.T, v variant) (*lab.Lab, *cluster.Snapshot) {
	t.Helper()
	testenv.RequireRoot(t)
	snap, err := conformance.Model(v.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	return startLabWith(t, v, snap), snap
}

func startLabWith(t *testing.T, v variant, snap *cluster.Snapshot) *lab.Lab {
	t.Helper()
	testenv.RequireRoot(t)
	l, err := lab.New(context.Background(), snap, lab.Options{
		Enforcer:     &lab.KernelEnforcer{ExistingConnections: v.Existing},
		Layout:       v.Layout,
		ProbeTimeout: *timeout,
		Parallelism:  *parallel,
	})
	if err != nil {
		t.Fatalf("build the lab (%s): %v", v.Name, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close the lab: %v", err)
		}
	})
	return l
}
