package conformance

import (
	"context"
	"fmt"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
)

// Runner drives one lab through cases: it resets the lab to its initial
// state between cases and applies each step with Lab.Update, so namespaces,
// pods and servers are built once and reused, and every change reaches the
// enforcer the way a watch event would, without restarting anything.
type Runner struct {
	Lab  *lab.Lab
	base *cluster.Snapshot
}

// NewRunner remembers the lab's current state as the one to reset to.
func NewRunner(l *lab.Lab) *Runner {
	return &Runner{Lab: l, base: l.Snapshot()}
}

// Reset brings the lab back to its initial state: no policy, the initial
// labels and pods.
func (r *Runner) Reset(ctx context.Context) error {
	if err := r.Lab.Update(ctx, lab.Clone(r.base)); err != nil {
		return fmt.Errorf("reset the lab: %w", err)
	}
	return nil
}

// State returns the lab's current state to change.
func (r *Runner) State() *State { return &State{Snap: r.Lab.Snapshot()} }

// Apply makes the lab match s, then probes the full matrix and judges every
// probe (see Judge).
func (r *Runner) Apply(ctx context.Context, s *State, checks []Check) (*Outcome, error) {
	if err := r.Lab.Update(ctx, s.Snap); err != nil {
		return nil, fmt.Errorf("update the lab: %w", err)
	}
	snap := r.Lab.Snapshot() // normalized: new pods have their addresses
	results, err := r.Lab.Probe(ctx)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	o := Judge(snap, results, checks)
	if r.Lab.DropsLogged() {
		o.ExpectDrops()
	}
	if err := r.recheck(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

// Rechecks is how many times a probe expected to connect that did not is
// probed again. The in-process servers answer late when the machine is busy
// (a 2-core CI machine running other packages' tests), and a late answer
// past the probe timeout looks like a block. A block that holds is still a
// failure, and a probe that connected where it should not is never probed
// again: a wrong "connected" is always reported.
const Rechecks = 2

func (r *Runner) recheck(ctx context.Context, o *Outcome) error {
	for range Rechecks {
		var idx []int
		var targets []lab.Target
		for i, v := range o.Verdicts {
			if v.Want && !v.OK() {
				idx = append(idx, i)
				targets = append(targets, v.Target)
			}
		}
		if len(targets) == 0 {
			return nil
		}
		o.Rechecked += len(targets)
		for _, t := range targets {
			o.RecheckedBy[string(t.Protocol)]++
		}
		again, err := r.Lab.ProbeTargets(ctx, targets)
		if err != nil {
			return fmt.Errorf("probe again: %w", err)
		}
		for k, i := range idx {
			o.Verdicts[i].Result = again[k]
		}
	}
	return nil
}

// Step applies one step of a case to the lab's current state.
func (r *Runner) Step(ctx context.Context, st Step) (*Outcome, error) {
	s := r.State()
	if st.Change != nil {
		if err := st.Change(s); err != nil {
			return nil, fmt.Errorf("%s: %w", st.Action, err)
		}
	}
	return r.Apply(ctx, s, st.Checks)
}
