package peer

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(30, 10); got != 3 {
		t.Errorf("Ratio(30, 10) = %v, want 3", got)
	}
	if got := Ratio(30, 0); got != 0 {
		t.Errorf("Ratio(30, 0) = %v, want 0", got)
	}
}

// save is iptables-save output in the shape kube-router v2.10 writes.
const save = `*filter
:KUBE-POD-FW-AAAA - [0:0]
:KUBE-NWPLCY-BBBB - [0:0]
-A KUBE-ROUTER-FORWARD -d 10.0.0.10/32 -m comment --comment "rule to jump traffic destined to POD name:pod-1 namespace: ns-0" -j KUBE-POD-FW-AAAA
-A KUBE-ROUTER-OUTPUT -d 10.0.0.10/32 -m comment --comment "rule to jump traffic destined to POD name:pod-1 namespace: ns-0" -j KUBE-POD-FW-AAAA
-A KUBE-ROUTER-FORWARD -d 10.0.0.11/32 -m comment --comment "rule to jump traffic destined to POD name:pod-10 namespace: ns-0" -j KUBE-POD-FW-CCCC
-A KUBE-POD-FW-AAAA -m comment --comment "run through nw policy allow-web" -j KUBE-NWPLCY-BBBB
COMMIT
`

func TestRouterRules(t *testing.T) {
	for _, c := range []struct {
		what string
		got  bool
		want bool
	}{
		{"policy allow-web", RouterHasPolicy(save, "allow-web"), true},
		{"policy allow (a prefix)", RouterHasPolicy(save, "allow"), false},
		{"pod ns-0/pod-1", RouterHasPod(save, "ns-0", "pod-1"), true},
		{"pod ns-0/pod-10", RouterHasPod(save, "ns-0", "pod-10"), true},
		{"pod ns-0/pod-2", RouterHasPod(save, "ns-0", "pod-2"), false},
		{"pod ns-1/pod-1 (other namespace)", RouterHasPod(save, "ns-1", "pod-1"), false},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if n := RouterPods(save); n != 2 {
		t.Errorf("RouterPods = %d, want 2 (pod-1 twice, pod-10 once)", n)
	}
}

func TestTable(t *testing.T) {
	rep := Report{Sizes: []Size{{Pods: 100, Policies: 10, LocalPods: 97, Runs: []Run{
		{Controller: "kube-fence", Policy: 10, Pod: 20, FullSync: 100, Startup: 300, RSS: 40, Peak: 44},
		{Controller: "kube-router v2.10.0", Policy: 1000, Pod: 2000, FullSync: 1000, Startup: 900, RSS: 60, Peak: 88},
		{Controller: "kube-fence", Policy: 30, Pod: 40, FullSync: 200, Startup: 500, RSS: 42, Peak: 46},
		{Controller: "kube-router v2.10.0", NotFinished: "too slow"},
	}}}}
	got := rep.Table()
	for _, want := range []string{
		"100 pods, 10 policies, 97 enforced on the node",
		"| | kube-fence | kube-router v2.10.0 | kube-router v2.10.0 / kube-fence |",
		"| policy to kernel (ms) | 20.0 | 1000.0 | 50.0x |",
		"| full sync (ms) | 150.0 | 1000.0 | 6.7x |",
		"| peak RSS (MiB) | 45.0 | 88.0 | 2.0x |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestFenceFullSync(t *testing.T) {
	const run1 = `=== 2026-12-03T10:24:44Z: ["kube-fence" "agent"]
time=2026-12-03T10:24:44.627Z level=INFO msg="table updated" changes=1 elementsAdded=2529 messages=1343 fullCompile=true took=900ms
`
	const run2 = `=== 2026-12-03T10:25:44Z: ["kube-fence" "agent"]
time=2026-12-03T10:25:44.510Z level=INFO msg="cluster state listed; enforcing"
time=2026-12-03T10:25:44.627Z level=INFO msg="table updated" changes=1 elementsAdded=2529 messages=1343 rebuilt=false fullCompile=true took=115.944071ms
time=2026-12-03T10:25:44.871Z level=INFO msg="table updated" changes=12 elementsAdded=18 messages=17 rebuilt=false fullCompile=false took=2ms
`
	got, err := FenceFullSync(run1 + run2)
	if err != nil || got != 115944071*time.Nanosecond {
		t.Errorf("FenceFullSync = %v, %v; want 115.944071ms from the last run", got, err)
	}
	if _, err := FenceFullSync(run1 + "=== 2026-12-03T10:26:00Z: [\"kube-fence\"]\n"); err == nil {
		t.Error("FenceFullSync found a full sync in a run that has none")
	}
}

func TestHasFlag(t *testing.T) {
	help := `Usage of kube-router:
      --health-addr string    Health check address to listen on (Default: all interfaces)
      --health-port uint16    Health check port, 0 = Disabled (default 20244)
  -h, --help                  Print usage information.
      --run-firewall          Enables Network Policy -- sets up iptables (see --iptables-sync-period)
`
	for _, c := range []struct {
		name string
		want bool
	}{
		{"health-addr", true},
		{"health-port", true},
		{"help", true},
		{"run-firewall", true},
		{"health", false},               // a prefix of a flag is not the flag
		{"iptables-sync-period", false}, // named in a description only
		{"h", false},                    // the shorthand is -h, not --h
	} {
		if got := HasFlag(help, c.name); got != c.want {
			t.Errorf("HasFlag(help, %q) = %v, want %v", c.name, got, c.want)
		}
	}
}
