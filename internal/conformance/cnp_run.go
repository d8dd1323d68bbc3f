package conformance

import (
	"context"
	"fmt"
	"strings"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

// CNPVerdict is one probe of an upstream ClusterNetworkPolicy case in one
// address family: what upstream expects and what the packets did.
type CNPVerdict struct {
	Step  string
	Probe CNPProbe
	lab.Result
}

// OK reports whether the packets did what upstream expects.
func (v CNPVerdict) OK() bool { return v.Problem == "" && v.Connected == v.Probe.Connected }

func (v CNPVerdict) String() string {
	s := fmt.Sprintf("%s: %s -> %s (%s) %s/%d: connected=%v, upstream expects %v",
		v.Step, v.From, v.To, v.IP, v.Protocol, v.Port, v.Connected, v.Probe.Connected)
	if v.Problem != "" {
		s += " (" + v.Problem + ")"
	}
	return s
}

// RunCNPCase runs one upstream case on a lab built from HousesModel: it
// resets the lab to base (the model without policies) plus the case's
// manifest, then for each step applies the step's changes through
// Lab.Update and sends the step's probes in both families. A probe expected
// to connect that did not is probed again (Rechecks), as Runner does: a
// late answer on a busy machine is not a block.
func RunCNPCase(ctx context.Context, l *lab.Lab, base *cluster.Snapshot, c CNPCase) ([]CNPVerdict, error) {
	loaded, err := c.Load(1)
	if err != nil {
		return nil, err
	}
	s := lab.Clone(base)
	s.ClusterNetworkPolicies = loaded.ClusterNetworkPolicies
	s.Policies = loaded.Policies
	if err := l.Update(ctx, s); err != nil {
		return nil, fmt.Errorf("%s: apply the manifest: %w", c.Name, err)
	}
	var out []CNPVerdict
	for _, st := range c.Steps {
		s := l.Snapshot()
		for _, ch := range st.Changes {
			if err := ch.Apply(s); err != nil {
				return out, fmt.Errorf("%s: %s: %s: %w", c.Name, st.Name, ch.Action, err)
			}
		}
		if err := l.Update(ctx, s); err != nil {
			return out, fmt.Errorf("%s: %s: update the lab: %w", c.Name, st.Name, err)
		}
		vs, err := probeCNPStep(ctx, l, l.Snapshot(), st)
		if err != nil {
			return out, fmt.Errorf("%s: %s: %w", c.Name, st.Name, err)
		}
		out = append(out, vs...)
	}
	return out, nil
}

func probeCNPStep(ctx context.Context, l *lab.Lab, s *cluster.Snapshot, st CNPStep) ([]CNPVerdict, error) {
	var vs []CNPVerdict
	var targets []lab.Target
	for _, p := range st.Probes {
		pairs, err := p.Endpoints(s)
		if err != nil {
			return nil, err
		}
		for _, ends := range pairs {
			tg := lab.Target{From: ends[0].Pod.Key(), To: ends[1].Pod.Key(), IP: ends[1].IP,
				Family: scenario.FamilyOf(ends[1].IP), Protocol: p.Protocol, Port: p.Port}
			targets = append(targets, tg)
			vs = append(vs, CNPVerdict{Step: st.Name, Probe: p})
		}
	}
	results, err := l.ProbeTargets(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	for i := range vs {
		vs[i].Result = results[i]
	}
	for range Rechecks {
		var idx []int
		var again []lab.Target
		for i, v := range vs {
			if v.Probe.Connected && !v.OK() {
				idx, again = append(idx, i), append(again, v.Target)
			}
		}
		if len(again) == 0 {
			break
		}
		rs, err := l.ProbeTargets(ctx, again)
		if err != nil {
			return nil, fmt.Errorf("probe again: %w", err)
		}
		for k, i := range idx {
			vs[i].Result = rs[k]
		}
	}
	return vs, nil
}

// CNPFailures lists the verdicts the packets got wrong, one a line.
func CNPFailures(vs []CNPVerdict) string {
	var b strings.Builder
	for _, v := range vs {
		if !v.OK() {
			b.WriteString(v.String() + "\n")
		}
	}
	return b.String()
}
