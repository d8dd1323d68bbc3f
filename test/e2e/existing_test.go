package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/lab/stream"
)

// echoPort is where x/a's echo servers listen (TCP and UDP), beside the
// lab's own servers.
const echoPort = 9000

// TestAgentExistingConnections: connections open when a change through the
// API denies them, with the agent as the DaemonSet runs it. With the
// default --existing-connections=cut, a TCP connection and a UDP flow the
// new state denies stop carrying data within cutBound of the API write,
// while those it still allows go on without a lost byte; the same when a
// relabel moves the client out of the allowing selector. With keep, they
// all go on. The time from the write to the last byte of each cut stream is
// logged: that is the bound docs/policy-semantics.md reports.
func TestAgentExistingConnections(t *testing.T) {
	c := newEnv(t)
	c.startDefaultAgent("agent")
	c.waitKernel(apiBound, "first sync")

	echo := c.serveEcho()
	streams := c.openStreams(echo, []string{"y/a", "y/b"})
	// x/a talks only with y/b. Egress as well as ingress, so a UDP reply
	// in flight at the cut cannot bring the flow back from x/a's side
	// (docs/policy-semantics.md).
	yb := peers(nsPodPeer(map[string]string{"ns": "y"}, map[string]string{"pod": "b"}))
	np := netpol("x", "a-with-y-b", map[string]string{"pod": "a"}, ingress, egress)
	np.Spec.Ingress = append(np.Spec.Ingress, from(yb))
	np.Spec.Egress = append(np.Spec.Egress, to(yb))
	start := time.Now()
	c.createPolicy(np)
	c.waitKernel(apiBound, "x/a talks only with y/b")
	c.checkStreams(streams, start, map[string]bool{"y/a": true}, "policy created")

	start = time.Now()
	c.relabelPod("y", "b", map[string]string{"pod": "b2"})
	c.waitKernel(apiBound, "y/b relabelled out of the selector")
	c.checkStreams(streams, start, map[string]bool{"y/a": true, "y/b": true}, "y/b relabelled")
	if v, err := c.agent.Metric(t.Context(), "kube_fence_conntrack_entries_cut_total"); err != nil || v < 8 {
		t.Errorf("kube_fence_conntrack_entries_cut_total = %v (%v), want at least the 8 cut streams", v, err)
	}
	for _, s := range streams {
		s.Close()
	}

	// keep: the agent restarted with the old behaviour; the same policy
	// now denies y/a, whose new streams must go on nonetheless.
	c.relabelPod("y", "b", map[string]string{"pod": "b"})
	c.deletePolicy("x", "a-with-y-b")
	c.waitKernel(apiBound, "policy deleted")
	if err := c.agent.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.startDefaultAgent("agent-keep", "--existing-connections=keep")
	streams = c.openStreams(echo, []string{"y/a"})
	start = time.Now()
	np.ResourceVersion = ""
	c.createPolicy(np)
	c.waitKernel(apiBound, "keep: x/a talks only with y/b")
	c.checkStreams(streams, start, nil, "keep: policy created")
	c.probeExact("keep: new connections follow the policy")
}

type clientStream struct {
	client string
	*stream.Stream
}

// serveEcho starts TCP and UDP echo servers on x/a's addresses.
func (c *env) serveEcho() []netip.AddrPort {
	c.t.Helper()
	var out []netip.AddrPort
	x := startPods[0]
	for _, ip := range x.ips() {
		dst := netip.AddrPortFrom(netip.MustParseAddr(ip), echoPort)
		echo, err := stream.ServeEcho(c.lab.PodNS(x.key()), dst)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { echo.Close() })
		out = append(out, dst)
	}
	return out
}

// openStreams starts, from each client, a TCP and a UDP stream to each
// echo server, and checks that they flow.
func (c *env) openStreams(dsts []netip.AddrPort, clients []string) []*clientStream {
	c.t.Helper()
	var out []*clientStream
	for _, dst := range dsts {
		for _, client := range clients {
			for _, network := range []string{"tcp", "udp"} {
				s, err := stream.Dial(c.lab.PodNS(client), network, dst, 64_000)
				if err != nil {
					c.t.Fatal(err)
				}
				c.t.Cleanup(s.Close)
				out = append(out, &clientStream{client, s})
			}
		}
	}
	for _, s := range out {
		if ok, st := s.Flowing(300 * time.Millisecond); !ok {
			c.t.Fatalf("%s from %s does not flow before the change: %+v", s.Name, s.client, st)
		}
	}
	return out
}

// cutBound is the bound for a connection a change denies to stop carrying
// data, from the API write: the change in the kernel (apiBound) and the cut
// after it.
const cutBound = apiBound

// checkStreams checks, once the kernel holds the change, that the streams of
// the denied clients stopped within cutBound of start and carry nothing
// more, and that the others still flow, complete and in order.
func (c *env) checkStreams(streams []*clientStream, start time.Time, denied map[string]bool, what string) {
	c.t.Helper()
	var mu sync.Mutex
	var stops []time.Duration
	var errs []string
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(100 * time.Millisecond) // packets in flight at the cut
			ok, st := s.Flowing(time.Second)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case denied[s.client] && ok:
				errs = append(errs, fmt.Sprintf("%s from %s still carries data after the change denied it", s.Name, s.client))
			case denied[s.client] && st.Last.After(start):
				stop := st.Last.Sub(start)
				stops = append(stops, stop)
				if stop > cutBound {
					errs = append(errs, fmt.Sprintf("%s from %s carried data %v after the API write, beyond %v", s.Name, s.client, stop, cutBound))
				}
			case !denied[s.client] && !ok:
				errs = append(errs, fmt.Sprintf("%s from %s, still allowed, stopped or lost data: %+v", s.Name, s.client, st))
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		c.t.Error(what + ": " + e)
	}
	if len(stops) > 0 {
		slices.Sort(stops)
		c.t.Logf("%s: %d streams cut; last data after the API write: min %v, max %v (bound %v)", what, len(stops),
			stops[0].Round(time.Millisecond), stops[len(stops)-1].Round(time.Millisecond), cutBound)
	}
}
