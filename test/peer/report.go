package peer

import (
	"fmt"
	"strings"
)

// Report is what -peer.out holds: every run of one sitting.
type Report struct {
	Date     string
	Kernel   string
	Iptables string
	Rounds   int
	Sizes    []Size
}

// Size is every run at one cluster size.
type Size struct {
	Pods, Policies, LocalPods int
	Runs                      []Run
}

// Run is one controller's run at one size. Times are in milliseconds,
// memory in MiB.
type Run struct {
	Controller string
	Round      int
	// Startup is the process started to every local pod enforced.
	Startup float64
	// FullSync is kube-fence's first sync (the whole cluster into an
	// empty table) and the mean of kube-router's syncs during the run
	// (each one a full sync).
	FullSync float64
	// Policy is a NetworkPolicy created (the API call returned) to its
	// rules in the kernel; Pod the same for a running pod on the node.
	Policy, Pod float64
	// RSS is VmRSS after the changes, Peak VmHWM.
	RSS, Peak float64
	// NotFinished says why the run stopped early, empty when it did not.
	NotFinished string `json:",omitempty"`
}

func (r Run) String() string {
	if r.NotFinished != "" {
		return "not finished: " + r.NotFinished
	}
	return fmt.Sprintf("startup %.0f ms, full sync %.1f ms, policy %.1f ms, pod %.1f ms, RSS %.1f MiB (peak %.1f)",
		r.Startup, r.FullSync, r.Policy, r.Pod, r.RSS, r.Peak)
}

// metrics are the columns of Table, in order.
var metrics = []struct {
	name string
	of   func(Run) float64
}{
	{"policy to kernel (ms)", func(r Run) float64 { return r.Policy }},
	{"new pod to kernel (ms)", func(r Run) float64 { return r.Pod }},
	{"full sync (ms)", func(r Run) float64 { return r.FullSync }},
	{"startup to enforcing (ms)", func(r Run) float64 { return r.Startup }},
	{"RSS (MiB)", func(r Run) float64 { return r.RSS }},
	{"peak RSS (MiB)", func(r Run) float64 { return r.Peak }},
}

// Table is the report as a Markdown table: per size and quantity, each
// controller's median over its finished runs, and each peer's median as a
// multiple of kube-fence's (the first controller).
func (rep Report) Table() string {
	var b strings.Builder
	for _, s := range rep.Sizes {
		var names []string
		byName := map[string][]Run{}
		for _, r := range s.Runs {
			if _, ok := byName[r.Controller]; !ok {
				names = append(names, r.Controller)
			}
			if r.NotFinished == "" {
				byName[r.Controller] = append(byName[r.Controller], r)
			}
		}
		fmt.Fprintf(&b, "\n%d pods, %d policies, %d enforced on the node\n\n| |", s.Pods, s.Policies, s.LocalPods)
		for i, n := range names {
			fmt.Fprintf(&b, " %s |", n)
			if i > 0 {
				fmt.Fprintf(&b, " %s / %s |", n, names[0])
			}
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", 2*len(names)-1) + "\n")
		for _, m := range metrics {
			fmt.Fprintf(&b, "| %s |", m.name)
			var base float64
			for i, n := range names {
				var xs []float64
				for _, r := range byName[n] {
					xs = append(xs, m.of(r))
				}
				med := Median(xs)
				if len(xs) == 0 {
					fmt.Fprintf(&b, " did not finish |")
				} else {
					fmt.Fprintf(&b, " %.1f |", med)
				}
				if i == 0 {
					base = med
				} else {
					fmt.Fprintf(&b, " %.1fx |", Ratio(med, base))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
