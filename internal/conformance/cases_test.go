package conformance

import (
	"strings"
	"testing"

	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/probe"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

// TestUpstreamCount pins the upstream list: 42 TCP, 3 UDP and 3 SCTP cases
// with distinct names within each group.
func TestUpstreamCount(t *testing.T) {
	count := map[string]int{}
	seen := map[string]bool{}
	for _, c := range Upstream() {
		count[c.Group]++
		if seen[c.Group+c.Name] {
			t.Errorf("duplicate case %s %q", c.Group, c.Name)
		}
		seen[c.Group+c.Name] = true
		if len(c.Steps) == 0 {
			t.Errorf("%q has no step", c.Name)
		}
		for _, st := range c.Steps {
			if len(st.Checks) == 0 {
				t.Errorf("%q step %q checks nothing", c.Name, st.Action)
			}
		}
	}
	if count[GroupTCP] != 42 || count[GroupUDP] != 3 || count[GroupSCTP] != 3 || len(count) != 3 {
		t.Errorf("cases per group: %v, want 42 TCP, 3 UDP, 3 SCTP", count)
	}
}

// TestCasesAgreeWithReference walks every case's steps without a lab and
// checks that each stated truth table agrees with the reference evaluator,
// on one node and on two: the tables were written from upstream's
// expectations, the evaluator from the API documentation.
func TestCasesAgreeWithReference(t *testing.T) {
	for _, nodes := range []int{1, 2} {
		base, err := Model(nodes)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range append(Upstream(), Extra()...) {
			s := &State{Snap: lab.Clone(base)}
			for i, st := range c.Steps {
				if st.Change != nil {
					if err := st.Change(s); err != nil {
						t.Fatalf("%s: step %d: %v", c.Name, i, err)
					}
				}
				if err := scenario.Normalize(s.Snap); err != nil {
					t.Fatal(err)
				}
				if o := Judge(s.Snap, nil, st.Checks); len(o.Disagreements) > 0 {
					t.Errorf("%d nodes: %s %q step %d (%s):\n%s", nodes, c.Group, c.Name, i, st.Action, o.Report())
				}
			}
		}
	}
}

// TestJudgeFindsWrongTables makes sure a wrong table is caught, both
// against the probes and against the reference evaluator.
func TestJudgeFindsWrongTables(t *testing.T) {
	base, err := Model(1)
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Snap: lab.Clone(base)}
	s.Apply(Policy("x", "deny", all, Ingress()))
	wrong := []Check{tcp(80, nil)} // says x is open
	o := Judge(s.Snap, nil, wrong)
	// 9 sources into the 3 pods of x, minus the 3 self pairs: 24 pairs, 2 families.
	if len(o.Disagreements) != 48 {
		t.Errorf("%d disagreements, want 48: %v", len(o.Disagreements), o.Disagreements)
	}
	if !strings.Contains(o.Report(), "upstream table says true, reference evaluator false") {
		t.Errorf("report does not show the disagreement:\n%s", o.Report())
	}
}

// TestJudgeReportsWrongProbes: a probe that saw the wrong thing fails its
// family only, and the report shows both tables and the differing cell.
func TestJudgeReportsWrongProbes(t *testing.T) {
	base, err := Model(1)
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Snap: lab.Clone(base)}
	s.Apply(Policy("x", "deny", all, Ingress()))
	var results []probe.Result
	for _, from := range s.PodKeys() {
		for _, to := range s.PodKeys() {
			if from == to {
				continue
			}
			for _, ip := range s.IPs(to) {
				tg := probe.Target{From: from, To: to, IP: ip, Family: scenario.FamilyOf(ip), Protocol: "TCP", Port: 80}
				connected := Reference(s.Snap, tg)
				if from == "y/a" && to == "x/b" && ip.Is6() {
					connected = true // the dataplane let one through
				}
				results = append(results, probe.Result{Target: tg, Connected: connected})
			}
		}
	}
	o := Judge(s.Snap, results, []Check{tcp(80, denyIngressToX)})
	if !o.Failed("") || !o.Failed("IPv6") || o.Failed("IPv4") {
		t.Errorf("failed: all %v, IPv6 %v, IPv4 %v; want true, true, false", o.Failed(""), o.Failed("IPv6"), o.Failed("IPv4"))
	}
	rep := o.Report()
	for _, want := range []string{"TCP/80 IPv6: expected (upstream)", "TCP/80 IPv6: observed", "y/a -> x/b: got ., want X"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "IPv4") {
		t.Errorf("report shows a family without wrong probes:\n%s", rep)
	}
}

// TestJudgeChecksWhereProbesWereDropped: with the lab logging drops, a
// blocked probe must say the side the reference evaluator denies it on; a
// missing or wrong side fails the probe and the report names it.
func TestJudgeChecksWhereProbesWereDropped(t *testing.T) {
	base, err := Model(1)
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Snap: lab.Clone(base)}
	s.Apply(Policy("x", "deny", all, Ingress()))
	var results []probe.Result
	for _, from := range s.PodKeys() {
		for _, to := range s.PodKeys() {
			if from == to {
				continue
			}
			for _, ip := range s.IPs(to) {
				tg := probe.Target{From: from, To: to, IP: ip, Family: scenario.FamilyOf(ip), Protocol: "TCP", Port: 80}
				r := probe.Result{Target: tg, Connected: Reference(s.Snap, tg)}
				if !r.Connected {
					r.DroppedBy = "ingress"
					if from == "y/a" && to == "x/b" && ip.Is4() {
						r.DroppedBy = "egress"
					}
				}
				results = append(results, r)
			}
		}
	}
	o := Judge(s.Snap, results, nil)
	if o.Failed("") {
		t.Fatalf("without ExpectDrops the side is not judged:\n%s", o.Report())
	}
	o.ExpectDrops()
	if !o.Failed("IPv4") || o.Failed("IPv6") {
		t.Errorf("failed: IPv4 %v, IPv6 %v; want true, false", o.Failed("IPv4"), o.Failed("IPv6"))
	}
	if rep := o.Report(); !strings.Contains(rep, `y/a -> x/b TCP/80 10.`) || !strings.Contains(rep, `dropped by "egress", want "ingress"`) {
		t.Errorf("report does not name the wrong side:\n%s", rep)
	}
}
