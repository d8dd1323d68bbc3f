package conformance

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/explain"
	"github.com/kube-fence/kube-fence/internal/lab/probe"
	"github.com/kube-fence/kube-fence/internal/lab/report"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// Where an expectation came from.
const (
	FromUpstream  = "upstream"
	FromReference = "reference"
)

// Verdict is one probe with what was expected of it.
type Verdict struct {
	probe.Result
	Want   bool
	Source string // FromUpstream or FromReference
	// WantDroppedBy is, when the lab logs drops, the side the reference
	// evaluator says denies the probe ("egress" when the source's egress
	// does, else "ingress"); empty for a probe that should connect.
	WantDroppedBy string
	// WantAuditDenied is, when the lab logs drops, whether the reference
	// evaluator says policies in audit mode would deny this probe (it
	// connects, and the kernel must log it as "would deny").
	WantAuditDenied bool
	dropsJudged     bool
}

// OK reports whether the probe saw what was expected (and nothing but the
// destination answered), and a blocked probe was dropped where expected.
func (v Verdict) OK() bool {
	return v.Connected == v.Want && v.Problem == "" && (v.Connected || v.WantDroppedBy == "" || v.DroppedBy == v.WantDroppedBy) &&
		(!v.dropsJudged || !v.Connected || v.AuditDenied == v.WantAuditDenied)
}

// ExpectDrops sets WantDroppedBy of every probe expected to be blocked,
// from the reference evaluator: the lab reports where the kernel dropped
// each blocked probe, and it must be the side that denies it.
func (o *Outcome) ExpectDrops() {
	for i := range o.Verdicts {
		v := &o.Verdicts[i]
		v.dropsJudged = true
		if !v.Want {
			v.WantDroppedBy = DeniedBy(o.Snap, v.Target)
		} else if rv, ok := referenceVerdict(o.Snap, v.Target); ok {
			v.WantAuditDenied = len(rv.WouldBeDeniedBy) > 0
		}
	}
}

// DeniedBy is where the table must drop a probe the reference evaluator
// denies: the source's egress is checked first, then the destination's
// ingress. It is "" for a probe the evaluator allows.
func DeniedBy(snap *cluster.Snapshot, t probe.Target) string {
	v, ok := referenceVerdict(snap, t)
	switch {
	case !ok || v.Allowed:
		return ""
	case !v.Egress.Allowed:
		return "egress"
	}
	return "ingress"
}

// Outcome is the judgement of one step.
type Outcome struct {
	Snap     *cluster.Snapshot
	Verdicts []Verdict
	// Disagreements list the cells where the step's upstream table and the
	// reference evaluator differ: a mistake in a case, or in the evaluator.
	Disagreements []string
	// Rechecked counts probes expected to connect that were probed again
	// because they did not (see Rechecks).
	Rechecked   int
	RecheckedBy map[string]int // by protocol
}

// Failed reports whether any probe of the family (all families when
// family is "") saw the wrong thing, or the step's tables disagree with the
// reference evaluator.
func (o *Outcome) Failed(family corev1.IPFamily) bool {
	if len(o.Disagreements) > 0 {
		return true
	}
	for _, v := range o.Verdicts {
		if (family == "" || v.Family == family) && !v.OK() {
			return true
		}
	}
	return false
}

type checkKey struct {
	proto corev1.Protocol
	port  int32
}

// Judge compares probe results with expectations: the step's upstream
// tables (checks) for their protocol and port, the reference evaluator on
// snap for every other probe. It also compares each upstream table with the
// reference evaluator over every pair and family, probed or not.
func Judge(snap *cluster.Snapshot, results []probe.Result, checks []Check) *Outcome {
	o := &Outcome{Snap: snap, RecheckedBy: map[string]int{}}
	st := &State{Snap: snap}
	tables := map[checkKey]*Reach{}
	for _, c := range checks {
		r := NewReach(st.PodKeys(), true)
		c.Expect(r)
		tables[checkKey{c.Protocol, c.Port}] = r
		o.Disagreements = append(o.Disagreements, disagreements(snap, c, r)...)
	}
	for _, res := range results {
		v := Verdict{Result: res, Source: FromReference}
		if r := tables[checkKey{res.Protocol, res.Port}]; r != nil {
			if want, ok := r.Get(res.From, res.To); ok {
				v.Want, v.Source = want, FromUpstream
			}
		}
		if v.Source == FromReference {
			v.Want = Reference(snap, res.Target)
		}
		o.Verdicts = append(o.Verdicts, v)
	}
	return o
}

// Reference asks the reference evaluator about one probe, through
// `kube-fence explain`'s own path (internal/explain), so every probe of the
// suite also checks what explain tells users against real packets.
func Reference(snap *cluster.Snapshot, t probe.Target) bool {
	v, ok := referenceVerdict(snap, t)
	return ok && v.Allowed
}

func referenceVerdict(snap *cluster.Snapshot, t probe.Target) (explain.Verdict, bool) {
	proto, _ := policy.ProtocolFromAPI(t.Protocol)
	r, err := explain.Explain(snap, explain.Query{From: t.From, To: t.To, Protocol: proto, Port: uint16(t.Port)})
	if err != nil {
		return explain.Verdict{}, false
	}
	for _, v := range r.Verdicts {
		if v.ToIP == t.IP.String() {
			return v, true
		}
	}
	return explain.Verdict{}, false
}

func disagreements(snap *cluster.Snapshot, c Check, r *Reach) []string {
	var out []string
	st := &State{Snap: snap}
	for _, from := range r.Pods() {
		for _, to := range r.Pods() {
			want, ok := r.Get(from, to)
			if !ok {
				continue
			}
			for _, dst := range st.IPs(to) {
				if _, shared := family(st.IPs(from), dst.Is4()); !shared {
					continue
				}
				t := probe.Target{From: from, To: to, IP: dst, Protocol: c.Protocol, Port: c.Port}
				if got := Reference(snap, t); got != want {
					out = append(out, fmt.Sprintf("%s -> %s %s/%d %s: upstream table says %v, reference evaluator %v",
						from, to, c.Protocol, c.Port, dst, want, got))
				}
			}
		}
	}
	return out
}

func family(ips []netip.Addr, v4 bool) (netip.Addr, bool) {
	for _, ip := range ips {
		if ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Report describes what went wrong: for every protocol, port and family with
// a wrong probe, the expected and the observed truth tables and the cells
// that differ; then any disagreement between tables and evaluator.
func (o *Outcome) Report() string {
	var b strings.Builder
	type group struct {
		key       report.Key
		want, got *report.Matrix
		sources   map[string]bool
		bad       bool
	}
	var keys []report.Key
	groups := map[report.Key]*group{}
	for _, v := range o.Verdicts {
		k := report.Key{Protocol: v.Protocol, Port: v.Port, Family: v.Family}
		g := groups[k]
		if g == nil {
			pods := (&State{Snap: o.Snap}).PodKeys()
			g = &group{key: k, want: report.NewMatrix(k, pods), got: report.NewMatrix(k, pods), sources: map[string]bool{}}
			groups[k] = g
			keys = append(keys, k)
		}
		g.want.Set(v.From, v.To, cell(v.Want))
		g.got.Set(v.From, v.To, cell(v.Connected))
		g.sources[v.Source] = true
		if !v.OK() {
			if v.Connected != v.Want || v.Problem != "" {
				g.bad = true
			}
			if v.Problem != "" {
				fmt.Fprintf(&b, "%s -> %s %s/%d %s: %s\n", v.From, v.To, v.Protocol, v.Port, v.IP, v.Problem)
			}
			if v.Connected && v.Want && v.AuditDenied != v.WantAuditDenied {
				fmt.Fprintf(&b, "%s -> %s %s/%d %s: connected, audit_denied %v, want %v\n", v.From, v.To, v.Protocol, v.Port, v.IP,
					v.AuditDenied, v.WantAuditDenied)
			}
			if v.Connected == v.Want && v.WantDroppedBy != "" && v.DroppedBy != v.WantDroppedBy {
				fmt.Fprintf(&b, "%s -> %s %s/%d %s: blocked, dropped by %q, want %q\n", v.From, v.To, v.Protocol, v.Port, v.IP,
					v.DroppedBy, v.WantDroppedBy)
			}
		}
	}
	for _, k := range keys {
		g := groups[k]
		if !g.bad {
			continue
		}
		src := strings.Join(slices.Sorted(func(yield func(string) bool) {
			for s := range g.sources {
				if !yield(s) {
					return
				}
			}
		}), "+")
		fmt.Fprintf(&b, "\n%s: expected (%s)\n%s%s: observed\n%s", k, src, g.want, k, g.got)
		b.WriteString("differing cells:\n  " + strings.Join(g.got.Diff(g.want), "\n  ") + "\n")
	}
	if len(o.Disagreements) > 0 {
		b.WriteString("\nupstream tables that disagree with the reference evaluator:\n  " + strings.Join(o.Disagreements, "\n  ") + "\n")
	}
	return b.String()
}

func cell(connected bool) report.Cell {
	if connected {
		return report.Allowed
	}
	return report.Blocked
}
