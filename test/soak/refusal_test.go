package soak

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/enforce"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/nft/kernel"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// refusal makes the kernel refuse the agent's transactions. While the
// agent owns its table no other process can change it (the kernel's owner
// flag), so the fault strikes in the one moment it can: the agent killed
// (as a kubelet restart), its persisted table unowned. Another process
// then creates in that table, under the name of a set the next state
// needs, a set of the same key type but with a size limit of one element,
// and a policy that needs that set is written (a canary pod's: no probe
// involves it). The new agent's transaction filling the set is refused by
// the kernel (ENFILE), and so is the repair from a read back, which takes
// the set for its own; then the agent must rebuild its table in one
// transaction. Checked: the agent counts the refusals
// (kube_fence_apply_errors_total), becomes ready without another restart,
// and the kernel holds the state (without the foreign set) within rec's
// catch-up; the probes go on throughout and hold the agent to its bound.
func (r *run) refusal(ctx context.Context, rec *faultRecord, strike int) error {
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	r.ch.Lock()
	defer r.ch.Unlock()
	c := r.churn
	canary := podSpec{ns: "canary", name: "c0", index: 190}
	c.specs[canary.key()] = canary
	if !c.exist[canary.key()] {
		if err := c.createPod(ctx, canary); err != nil {
			return fmt.Errorf("the canary pod: %w", err)
		}
	}
	if err := r.waitCommitted(ctx, r.h.last()); err != nil {
		return err
	}
	if err := r.killAgent(ctx); err != nil {
		return err
	}
	np := refusedPolicy(strike)
	pols := withPolicy(c.pols, np)
	name, err := r.newAddr4Set(snapshotOf(c.node, c.nss, c.pods, pols))
	if err != nil {
		return err
	}
	cmd := "add set inet " + nft.TableName + " " + name + " { type ipv4_addr; flags interval; size 1; }"
	var out []byte
	for wait := time.Now(); time.Since(wait) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
		// Refused (EPERM) until the killed agent's socket, which owns
		// the table, is closed.
		if out, err = runIn(r, exec.CommandContext(ctx, "nft", cmd)); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("nft %s: %v: %s", cmd, err, out)
	}
	key := np.Namespace + "/" + np.Name
	if err := c.write(ctx, "create policy "+key+" (its set taken by a foreign one)", func(ctx context.Context) error {
		got, err := c.api.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		c.pols[key] = got
		return nil
	}); err != nil {
		return err
	}
	st := r.h.last()
	r.h.mu.Lock()
	st.catchUp = true // its latency is the fault's, reported below
	r.h.mu.Unlock()
	begin := time.Now()
	r.agentMu.Lock()
	n := r.started
	r.agentMu.Unlock()
	r.startAgent(fmt.Sprintf("agent-refused-%d", n))
	rec.Took = time.Since(begin).Round(time.Millisecond).String()
	if err := r.waitCommitted(ctx, st); err != nil {
		return err
	}
	r.agentMu.Lock()
	a := r.agent
	r.agentMu.Unlock()
	refused, err := a.Metric(ctx, "kube_fence_apply_errors_total")
	if err != nil {
		return fmt.Errorf("scrape the agent: %w", err)
	}
	if refused < 1 || !strings.Contains(a.Tail(200), "nftables transaction refused") {
		return fmt.Errorf("the kernel refused nothing, or the agent did not report it (apply errors %v): the fault proves nothing", refused)
	}
	r.h.mu.Lock()
	rec.CatchUp = st.committed.Sub(st.ack).Round(time.Millisecond).String()
	r.h.mu.Unlock()
	rec.Note = fmt.Sprintf("set %s taken; %v transactions refused, then the table rebuilt; agent start to ready %s", name, refused, rec.Took)
	return nil
}

// refusedPolicy allows the canary pods ingress from two ranges, other ones
// at every strike, so each strike needs a set of its own.
func refusedPolicy(strike int) *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(80)
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "canary", Name: fmt.Sprintf("refused-%d", strike)},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			// Each peer is a set of its own (shared peer sets) of two
			// ranges, more than the foreign set's size of one.
			From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("192.0.2.%d/29", 8*(strike%32)), Except: []string{fmt.Sprintf("192.0.2.%d/31", 8*(strike%32)+2)}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("198.51.100.%d/29", 8*(strike%32)), Except: []string{fmt.Sprintf("198.51.100.%d/31", 8*(strike%32)+2)}}},
			},
		}}}}
}

func withPolicy(pols map[string]*networkingv1.NetworkPolicy, np *networkingv1.NetworkPolicy) map[string]*networkingv1.NetworkPolicy {
	out := make(map[string]*networkingv1.NetworkPolicy, len(pols)+1)
	for k, v := range pols {
		out[k] = v
	}
	out[np.Namespace+"/"+np.Name] = np
	return out
}

// newAddr4Set returns the name of an IPv4 address set with more elements
// than one (the foreign set's size) that the table snap requires has and
// the kernel's has not.
func (r *run) newAddr4Set(snap *cluster.Snapshot) (string, error) {
	_, want := enforce.Preview(snap, nodeName, policy.Options{DefaultDenyUnknown: true}, nft.DropLog{})
	reader, err := kernel.Open(kernel.Options{NetNSFD: r.lab.Node(nodeName).NS().FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		return "", err
	}
	defer reader.Close()
	have, err := reader.Read()
	if err != nil {
		return "", fmt.Errorf("read the table: %w", err)
	}
	d := nft.Diff(want, have)
	i := slices.IndexFunc(d.AddSets, func(s *nft.Set) bool { return s.Type == nft.Addr4 && len(s.Elements()) > 1 })
	if i < 0 {
		return "", fmt.Errorf("the policy adds no IPv4 address set of two ranges or more: %s", strings.Join(d.Differences, "; "))
	}
	return d.AddSets[i].Name, nil
}

// waitCommitted waits until the kernel held st (or a later state), at
// most a minute.
func (r *run) waitCommitted(ctx context.Context, st *state) error {
	for wait := time.Now(); time.Since(wait) < time.Minute && ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		r.h.mu.Lock()
		done := !st.committed.IsZero()
		r.h.mu.Unlock()
		if done {
			return nil
		}
	}
	return fmt.Errorf("the kernel does not hold the state %q a minute after it was written", st.what)
}
