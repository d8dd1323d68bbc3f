package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// DatapathConfig sizes the datapath measurement.
type DatapathConfig struct {
	// Policies are the policy counts to compare; the first must be 0, the
	// baseline the others are compared with.
	Policies []int `json:"policies"`
	// Rounds repeats the whole comparison; the counts take turns within a
	// round, so drift on the machine hits them alike.
	Rounds int `json:"rounds"`
	// Connects is how many connections are timed per count and round, and
	// Stream how long the throughput stream runs.
	Connects int           `json:"connects"`
	Stream   time.Duration `json:"stream"`
	// CNPs are ClusterNetworkPolicy counts measured beside the NetworkPolicy
	// counts, each on a pair of its own with that many admin policies
	// selecting the measured pods and no NetworkPolicy (see datapathCNPs),
	// compared with the same baseline.
	CNPs []int `json:"cnps,omitempty"`
	// NoDropLog renders plain drops instead of drops that log
	// (--log-denied=false), and AuditPolicies adds that many policies in
	// audit mode to every pair (a copy of its policies, allowing the
	// measured connection too), so the audit chains judge every new
	// connection: the cost of logging and of audit mode.
	NoDropLog     bool `json:"noDropLog,omitempty"`
	AuditPolicies int  `json:"auditPolicies,omitempty"`
}

func (c DatapathConfig) validate() error {
	if len(c.Policies) == 0 {
		return nil
	}
	var errs []error
	if c.Policies[0] != 0 {
		errs = append(errs, fmt.Errorf("datapath policy counts %v: the first must be 0, the baseline", c.Policies))
	}
	for _, n := range c.CNPs {
		if n < 1 {
			errs = append(errs, fmt.Errorf("datapath ClusterNetworkPolicy counts %v: want positive counts (0 is the baseline)", c.CNPs))
			break
		}
	}
	if c.Rounds < 1 || c.Connects < 1 || c.Stream <= 0 {
		errs = append(errs, fmt.Errorf("datapath: rounds %d, connects %d, stream %v: want positive values", c.Rounds, c.Connects, c.Stream))
	}
	return errors.Join(errs...)
}

// DatapathResult is one policy count.
type DatapathResult struct {
	Policies int `json:"policies"`
	CNPs     int `json:"cnps,omitempty"` // ClusterNetworkPolicies instead of NetworkPolicies
	// The table the packets met on the node.
	Chains   int `json:"chains"`
	Elements int `json:"elements"`
	// Connect is the median time of a TCP connect (SYN to SYN-ACK, the
	// packet that walks the rules) per round, in microseconds, and
	// ConnectRatio that divided by the baseline's in the same round.
	// ConnectFast is the 10th percentile per round: the path's own cost,
	// less disturbed by other work on the machine.
	Connect          Sample `json:"connectUs"`
	ConnectRatio     Sample `json:"connectRatio"`
	ConnectFast      Sample `json:"connectP10Us"`
	ConnectFastRatio Sample `json:"connectP10Ratio"`
	// Throughput is one TCP stream in Gbit/s per round, and ThroughputRatio
	// that divided by the baseline's in the same round.
	Throughput      Sample `json:"throughputGbps"`
	ThroughputRatio Sample `json:"throughputRatio"`
	// Denied says a connection to a port no policy allows was dropped: the
	// policies were enforced on the measured packets.
	Denied bool `json:"deniedPortDropped"`
}

const (
	benchNS     = "bench"
	allowedPort = 8080
	deniedPort  = 8081
)

// Each policy count gets a lab node of its own with a client and a server
// pod, all in one lab and one snapshot: a node's table holds the profiles of
// its own pods only, so the counts coexist and the measurements can take
// turns every few hundred milliseconds instead of rewriting a table between
// them, which spreads the machine's drift evenly over the counts.
func measureDatapath(ctx context.Context, cfg DatapathConfig, log func(string, ...any)) ([]DatapathResult, error) {
	log("datapath: building the lab (one node with a client and a server pod per policy count)")
	snap := &cluster.Snapshot{Namespaces: []*cluster.Namespace{{Name: benchNS, Labels: labels.Set{corev1.LabelMetadataName: benchNS}}}}
	setups := make([]DatapathResult, 0, len(cfg.Policies)+len(cfg.CNPs))
	for _, n := range cfg.Policies {
		setups = append(setups, DatapathResult{Policies: n})
	}
	for _, n := range cfg.CNPs {
		setups = append(setups, DatapathResult{CNPs: n})
	}
	for i, su := range setups {
		node := fmt.Sprintf("dp-%d", i)
		snap.Nodes = append(snap.Nodes, &cluster.Node{Name: node})
		for _, role := range []string{"client", "server"} {
			snap.Pods = append(snap.Pods, &cluster.Pod{Namespace: benchNS, Name: fmt.Sprintf("%s-%d", role, i), NodeName: node,
				Labels: labels.Set{"app": fmt.Sprintf("%s-%d", role, i)}, Phase: corev1.PodRunning})
		}
		snap.Policies = append(snap.Policies, datapathPolicies(su.Policies, i)...)
		snap.ClusterNetworkPolicies = append(snap.ClusterNetworkPolicies, datapathCNPs(su.CNPs, i)...)
		snap.Policies = append(snap.Policies, auditPolicies(cfg.AuditPolicies, i)...)
	}
	enf := &lab.KernelEnforcer{DropLog: nft.DropLog{Off: cfg.NoDropLog}}
	l, err := lab.New(ctx, snap, lab.Options{Enforcer: enf})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	built := l.Snapshot()

	type pair struct {
		client *netns.NS
		dst    netip.AddrPort
		srv    *server
	}
	pairs := make([]pair, len(setups))
	out := setups
	for i := range setups {
		n := setups[i].Policies + setups[i].CNPs
		ip := podIP(built, fmt.Sprintf("%s/server-%d", benchNS, i))
		srv, err := listen(l.PodNS(fmt.Sprintf("%s/server-%d", benchNS, i)), ip)
		if err != nil {
			return nil, err
		}
		defer srv.close()
		pairs[i] = pair{client: l.PodNS(fmt.Sprintf("%s/client-%d", benchNS, i)), dst: netip.AddrPortFrom(ip, allowedPort), srv: srv}
		t := enf.Desired(fmt.Sprintf("dp-%d", i)) // read back equal after its transaction
		if t == nil {
			return nil, fmt.Errorf("node dp-%d: nothing enforced", i)
		}
		out[i].Chains, _, _, out[i].Elements = t.Counts()
		out[i].Denied = !reaches(pairs[i].client, netip.AddrPortFrom(ip, deniedPort))
		if n > 0 && !out[i].Denied {
			return nil, fmt.Errorf("%d policies: a port no policy allows is open: the policies are not enforced", n)
		}
	}
	for round := range cfg.Rounds {
		lat, fast, tput := make([]float64, len(pairs)), make([]float64, len(pairs)), make([]float64, len(pairs))
		for k := range pairs {
			i := (k + round) % len(pairs) // a different count goes first each round
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if lat[i], fast[i], err = connectLatency(ctx, pairs[i].client, pairs[i].dst, cfg.Connects); err != nil {
				return nil, fmt.Errorf("%s: %w", setupName(out[i]), err)
			}
			if tput[i], err = throughput(pairs[i].client, pairs[i].dst, pairs[i].srv, cfg.Stream); err != nil {
				return nil, fmt.Errorf("%s: %w", setupName(out[i]), err)
			}
		}
		for i := range pairs {
			r := &out[i]
			r.Connect, r.Throughput = append(r.Connect, lat[i]), append(r.Throughput, tput[i])
			r.ConnectRatio = append(r.ConnectRatio, lat[i]/lat[0])
			r.ConnectFast, r.ConnectFastRatio = append(r.ConnectFast, fast[i]), append(r.ConnectFastRatio, fast[i]/fast[0])
			r.ThroughputRatio = append(r.ThroughputRatio, tput[i]/tput[0])
		}
		log("datapath: round %d of %d: connect %v µs, stream %v Gbit/s", round+1, cfg.Rounds, nums(lat), nums(tput))
	}
	return out, nil
}

func nums(v []float64) string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = num(x)
	}
	return strings.Join(out, " ")
}

func podIP(s *cluster.Snapshot, key string) netip.Addr {
	for _, p := range s.Pods {
		if p.Key() == key {
			for _, ip := range p.IPs {
				if ip.Is4() {
					return ip
				}
			}
		}
	}
	return netip.Addr{}
}

// datapathPolicies returns n policies that all land on pair i's pods: the
// first two let the client reach the server on the measured port (an egress
// policy on the client, an ingress policy on the server); the others
// alternate between ingress policies on the server and egress policies on
// the client, each allowing its own ipBlock (addresses of no pod, IPv4 and
// an IPv6 block with a hole) on ports that mostly include the measured one.
// So both pods are isolated, their profiles are the union of all of them,
// and the first packet of every measured connection walks two profile
// chains with port maps and peer sets of thousands of elements.
func datapathPolicies(n, pair int) []*networkingv1.NetworkPolicy {
	if n == 0 {
		return nil
	}
	client, server := fmt.Sprintf("client-%d", pair), fmt.Sprintf("server-%d", pair)
	sel := func(app string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	port := func(p int32, end int32) networkingv1.NetworkPolicyPort {
		pp := intstr.FromInt32(p)
		out := networkingv1.NetworkPolicyPort{Port: &pp}
		if end > p {
			out.EndPort = &end
		}
		return out
	}
	ports := [][]networkingv1.NetworkPolicyPort{
		{port(allowedPort, 0)},
		{port(allowedPort, 0), port(443, 0)},
		{port(80, 0), port(allowedPort, 0)},
		{port(9000, 9100)},
		{port(allowedPort-10, allowedPort+10)},
	}
	name := func(what string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: benchNS, Name: fmt.Sprintf("pair-%d-%s", pair, what)}
	}
	out := []*networkingv1.NetworkPolicy{
		{ObjectMeta: name("client-egress"), Spec: networkingv1.NetworkPolicySpec{
			PodSelector: sel(client), PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": server}}}},
				Ports: []networkingv1.NetworkPolicyPort{port(allowedPort, 0)},
			}},
		}},
	}
	if n > 1 {
		out = append(out, &networkingv1.NetworkPolicy{ObjectMeta: name("server-ingress"), Spec: networkingv1.NetworkPolicySpec{
			PodSelector: sel(server),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": client}}}},
				Ports: []networkingv1.NetworkPolicyPort{port(allowedPort, 0)},
			}},
		}})
	}
	for i := len(out); i < n; i++ {
		// 172.16.0.0/12 and fd00:99::/32 hold no pod.
		v4 := netip.AddrFrom4([4]byte{172, byte(16 + i>>16&0xf), byte(i >> 8), byte(i)})
		v6 := netip.AddrFrom16([16]byte{0xfd, 0, 0, 0x99, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		peers := []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(v4, 32).String()}},
			{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(v6, 126).String(), Except: []string{netip.PrefixFrom(v6, 128).String()}}},
		}
		np := &networkingv1.NetworkPolicy{ObjectMeta: name(fmt.Sprintf("%05d", i))}
		if i%2 == 0 {
			np.Spec.PodSelector = sel(server)
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: peers, Ports: ports[i%len(ports)]}}
		} else {
			np.Spec.PodSelector = sel(client)
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: peers, Ports: ports[i%len(ports)]}}
		}
		out = append(out, np)
	}
	return out
}

// auditPolicies are the pair's policies of a count, in audit mode.
func auditPolicies(n, pair int) []*networkingv1.NetworkPolicy {
	out := datapathPolicies(n, pair)
	for _, np := range out {
		np.Name = "audit-" + np.Name
		np.Annotations = map[string]string{policy.ModeAnnotation: policy.ModeAudit}
	}
	return out
}

// server accepts on the allowed and the denied port: connections on the
// allowed one are closed at once or, for the throughput stream, read to the
// end and counted.
type server struct {
	lns      []net.Listener
	received atomic.Int64
	streams  chan struct{}
}

func listen(ns *netns.NS, ip netip.Addr) (*server, error) {
	s := &server{streams: make(chan struct{}, 1)}
	for _, port := range []uint16{allowedPort, deniedPort} {
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, port).String())
			return err
		}); err != nil {
			s.close()
			return nil, err
		}
		s.lns = append(s.lns, ln)
		go s.serve(ln)
	}
	return s, nil
}

func (s *server) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var first [1]byte
			if n, _ := c.Read(first[:]); n == 0 {
				return // a timed connect: the client closed at once
			}
			n, _ := io.Copy(io.Discard, c)
			s.received.Add(n + 1)
			s.streams <- struct{}{}
		}()
	}
}

func (s *server) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

// onThread runs f on a goroutine locked to an OS thread that has entered
// ns, and retires the thread afterwards. Timed system calls then run on one
// thread with no namespace switch and no scheduler hand-off in between,
// which on a busy 2-core machine is most of the noise of a Go dial.
func onThread(ns *netns.NS, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(ns.FD(), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// connectFD makes a blocking TCP connect with a timeout and returns the
// socket.
func connectFD(dst netip.AddrPort, timeout time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	if err == unix.EINTR {
		// A signal (the Go runtime's preemption) interrupted the wait, not
		// the connect, which goes on: wait for it to finish.
		err = awaitConnect(fd, timeout)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func awaitConnect(fd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		switch {
		case err == unix.EINTR || err == nil && n == 0:
			continue
		case err != nil:
			return err
		}
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if v != 0 {
			return unix.Errno(v)
		}
		return nil
	}
}

// closeReset closes with a reset, so no TIME_WAIT piles up.
func closeReset(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

func reaches(ns *netns.NS, dst netip.AddrPort) bool {
	return onThread(ns, func() error {
		fd, err := connectFD(dst, 300*time.Millisecond)
		if err == nil {
			closeReset(fd)
		}
		return err
	}) == nil
}

// connectLatency times n blocking connects (the SYN walks the rules, the
// SYN-ACK comes back) and returns the median and the 10th percentile in
// microseconds.
func connectLatency(ctx context.Context, ns *netns.NS, dst netip.AddrPort, n int) (float64, float64, error) {
	var s Sample
	err := onThread(ns, func() error {
		for range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			t0 := time.Now()
			fd, err := connectFD(dst, 2*time.Second)
			if err != nil {
				return fmt.Errorf("connect to %s: %w", dst, err)
			}
			s = append(s, float64(time.Since(t0))/float64(time.Microsecond))
			closeReset(fd)
		}
		return nil
	})
	return s.Median(), s.Quantile(0.1), err
}

// throughput streams for d from one thread and returns Gbit/s as the
// server counted them.
func throughput(ns *netns.NS, dst netip.AddrPort, srv *server, d time.Duration) (float64, error) {
	srv.received.Store(0)
	var elapsed time.Duration
	err := onThread(ns, func() error {
		fd, err := connectFD(dst, 2*time.Second)
		if err != nil {
			return err
		}
		buf := make([]byte, 256<<10)
		t0 := time.Now()
		for time.Since(t0) < d {
			if _, err := unix.Write(fd, buf); err != nil && err != unix.EINTR {
				unix.Close(fd)
				return fmt.Errorf("stream to %s: %w", dst, err)
			}
		}
		unix.Close(fd)
		select {
		case <-srv.streams:
		case <-time.After(10 * time.Second):
			return errors.New("the server never saw the stream end")
		}
		elapsed = time.Since(t0)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return float64(srv.received.Load()) * 8 / elapsed.Seconds() / 1e9, nil
}
