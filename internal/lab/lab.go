package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab/probe"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/lab/topo"
	"github.com/kube-fence/kube-fence/internal/netns"
)

// Node is one lab node; the enforcer programs that node's policy in its
// namespace (Node.NS) and can run tools there (Node.Command).
type Node = topo.Node

// Target and Result are one probe and what it saw.
type (
	Target = probe.Target
	Result = probe.Result
)

// Enforcer programs a node's policy enforcement inside that node's network
// namespace. The lab calls Enforce for every node after every change, with
// the complete snapshot (which it must not modify), and Close once when the
// lab closes.
type Enforcer interface {
	Enforce(ctx context.Context, node *Node, snap *cluster.Snapshot) error
	Close() error
}

// NoEnforcement is the enforcer that does nothing: every probe connects.
type NoEnforcement struct{}

func (NoEnforcement) Enforce(context.Context, *Node, *cluster.Snapshot) error { return nil }
func (NoEnforcement) Close() error                                            { return nil }

// Options configure a lab. The zero value is usable.
type Options struct {
	// Layout wires pods to nodes: topo.Bridge (the default) or topo.Routed.
	Layout topo.Layout
	// Enforcer programs each node; NoEnforcement when nil. The lab owns it
	// and closes it.
	Enforcer Enforcer
	// ProbeTimeout bounds each probe (default 1s). A blocked probe costs
	// this long, so it sets the speed of a run with many denied pairs.
	ProbeTimeout time.Duration
	// Parallelism is how many probes run at once (default 128). Waiting
	// probes hold a socket each but no thread.
	Parallelism int
}

// Defaults returns o with every unset field set.
func (o Options) Defaults() Options {
	if o.Layout == "" {
		o.Layout = topo.Bridge
	}
	if o.Enforcer == nil {
		o.Enforcer = NoEnforcement{}
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = time.Second
	}
	if o.Parallelism == 0 {
		o.Parallelism = 128
	}
	return o
}

// Validate checks o (after Defaults).
func (o Options) Validate() error {
	var errs []error
	if o.Layout != topo.Bridge && o.Layout != topo.Routed {
		errs = append(errs, fmt.Errorf("layout %q: want %q or %q", o.Layout, topo.Bridge, topo.Routed))
	}
	if o.ProbeTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("probe timeout %v is too short", o.ProbeTimeout))
	}
	if o.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("parallelism %d: want at least 1", o.Parallelism))
	}
	return errors.Join(errs...)
}

// Lab is a running lab: nodes and pods as network namespaces, servers in the
// pods, an enforcer on the nodes. Probe may run while Update applies a change;
// Update calls are serialised.
type Lab struct {
	opts Options
	topo *topo.Topology
	net  *probe.Net

	update sync.Mutex // serialises Update and Close
	// inflight is held shared by running probes and exclusively while pod
	// namespaces are released, so no probe enters a closed namespace.
	inflight sync.RWMutex
	mu       sync.Mutex // guards snap and pods
	snap     *cluster.Snapshot
	pods     map[string]*labPod
}

type labPod struct {
	pod *cluster.Pod
	tp  *topo.Pod
	srv *probe.Server
}

// New builds a lab from a snapshot (normalized first, see
// scenario.Normalize): nodes, pods with their servers, then the enforcer on
// every node. The lab owns opts.Enforcer from here on: on error everything
// built is released and the enforcer closed.
func New(ctx context.Context, snap *cluster.Snapshot, opts Options) (_ *Lab, err error) {
	opts = opts.Defaults()
	var l *Lab
	defer func() {
		switch {
		case err == nil:
		case l != nil:
			l.Close()
		default:
			opts.Enforcer.Close() // the lab owns it from the start
		}
	}()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := Clone(snap)
	if err := scenario.Normalize(s); err != nil {
		return nil, err
	}
	tp, err := topo.New(opts.Layout, nodeSpecs(s))
	if err != nil {
		return nil, fmt.Errorf("build nodes: %w", err)
	}
	l = &Lab{opts: opts, topo: tp, net: probe.NewNet(), snap: s, pods: map[string]*labPod{}}
	for _, p := range s.Pods {
		if runnable(p) {
			if err := l.startPod(p); err != nil {
				return nil, err
			}
		}
	}
	if err := tp.Ready(ctx); err != nil {
		return nil, err
	}
	if err := l.enforce(ctx, s); err != nil {
		return nil, err
	}
	return l, nil
}

func nodeSpecs(s *cluster.Snapshot) []topo.NodeSpec {
	var specs []topo.NodeSpec
	for i, n := range s.Nodes {
		spec := topo.NodeSpec{Name: n.Name, PodCIDRs: n.PodCIDRs, Gateways: scenario.Gateways(n.PodCIDRs)}
		if len(s.Nodes) > 1 {
			spec.Fabric = scenario.FabricAddrs(i)
		}
		specs = append(specs, spec)
	}
	return specs
}

// runnable reports whether a pod gets a namespace and servers: running, and
// with addresses (or on the host network).
func runnable(p *cluster.Pod) bool {
	return p.Phase == corev1.PodRunning && (p.HostNetwork || len(p.IPs) > 0)
}

func (l *Lab) startPod(p *cluster.Pod) error {
	tp, err := l.topo.AddPod(topo.PodSpec{Key: p.Key(), Node: p.NodeName, IPs: p.IPs, HostNetwork: p.HostNetwork})
	if err != nil {
		return err
	}
	srv, err := l.net.Serve(tp.NS(), p.Key(), p.IPs, p.Ports)
	if err != nil {
		return errors.Join(err, l.topo.RemovePod(p.Key()))
	}
	l.mu.Lock()
	l.pods[p.Key()] = &labPod{pod: p, tp: tp, srv: srv}
	l.mu.Unlock()
	return nil
}

// stopPod must run with l.inflight held exclusively.
func (l *Lab) stopPod(key string) error {
	l.mu.Lock()
	lp := l.pods[key]
	delete(l.pods, key)
	l.mu.Unlock()
	if lp == nil {
		return nil
	}
	return errors.Join(lp.srv.Close(), l.topo.RemovePod(key))
}

func (l *Lab) enforce(ctx context.Context, s *cluster.Snapshot) error {
	view := Clone(s) // one copy for all nodes; enforcers must not modify it
	for _, n := range l.topo.Nodes() {
		if err := l.opts.Enforcer.Enforce(ctx, n, view); err != nil {
			return fmt.Errorf("enforce on node %s: %w", n.Name(), err)
		}
	}
	return nil
}

// Snapshot returns a copy of the lab's current, normalized snapshot: the one
// to change and hand back to Update.
func (l *Lab) Snapshot() *cluster.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Clone(l.snap)
}

// Nodes returns the lab's nodes.
func (l *Lab) Nodes() []*Node { return l.topo.Nodes() }

// Node returns the named node, or nil.
func (l *Lab) Node(name string) *Node { return l.topo.Node(name) }

// PodNS returns the network namespace of a running pod (its node's for a
// hostNetwork pod), or nil. It stays valid until the pod is removed.
func (l *Lab) PodNS(key string) *netns.NS {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lp := l.pods[key]; lp != nil {
		return lp.tp.NS()
	}
	return nil
}

// Close stops the servers, closes the enforcer and releases every namespace.
func (l *Lab) Close() error {
	l.update.Lock()
	defer l.update.Unlock()
	l.inflight.Lock()
	defer l.inflight.Unlock()
	var errs []error
	l.mu.Lock()
	keys := sortedKeys(l.pods)
	l.mu.Unlock()
	for _, k := range keys {
		errs = append(errs, l.stopPod(k))
	}
	if l.opts.Enforcer != nil {
		errs = append(errs, l.opts.Enforcer.Close())
		l.opts.Enforcer = NoEnforcement{}
	}
	errs = append(errs, l.topo.Close())
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
