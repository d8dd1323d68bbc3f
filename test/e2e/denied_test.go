package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/lab"
	"github.com/kube-fence/kube-fence/internal/policy"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// deniedLine is the agent's log line for a denied connection, as its JSON
// handler writes it.
type deniedLine struct {
	Msg      string   `json:"msg"`
	Family   string   `json:"family"`
	Protocol string   `json:"protocol"`
	Src      string   `json:"src"`
	Dst      string   `json:"dst"`
	DstPort  int      `json:"dstPort"`
	SrcPod   string   `json:"srcPod"`
	DstPod   string   `json:"dstPod"`
	Side     string   `json:"side"`
	Policies []string `json:"policies"`
}

// TestDeniedConnectionLog runs the agent as the DaemonSet does, against a
// real API server, and makes connections the policies deny on each side,
// and one that a policy in audit mode would deny: each must produce its log
// line, naming the pods at both ends, the side that denied it and the
// policies isolating that side, within a second of the first packet; the
// metrics count them.
func TestDeniedConnectionLog(t *testing.T) {
	c := newEnv(t)
	a := c.startDefaultAgent("kube-fence-agent")
	deny := netpol("y", "deny-to-b", map[string]string{"pod": "b"}, ingress)
	egressOnly := netpol("x", "a-egress-80", map[string]string{"pod": "a"}, egress)
	egressOnly.Spec.Egress = append(egressOnly.Spec.Egress, to(peers(podPeer(map[string]string{"pod": "b"})), numberPort(corev1.ProtocolTCP, 80)))
	audit := netpol("x", "audit-b", map[string]string{"pod": "b"}, ingress)
	audit.Annotations = map[string]string{policy.ModeAnnotation: policy.ModeAudit}
	c.createPolicy(deny)
	c.createPolicy(egressOnly)
	c.createPolicy(audit)
	c.waitKernel(apiBound, "policies created")

	for _, tc := range []struct {
		target           lab.Target
		side, src, dst   string
		policies         []string
		protocol, family string
		audit            bool
	}{
		{target: c.target("x/b", "y/b", corev1.ProtocolTCP, 80, true), side: "ingress", src: "x/b", dst: "y/b",
			policies: []string{"y/deny-to-b"}, protocol: "TCP", family: "IPv4"},
		{target: c.target("x/a", "y/a", corev1.ProtocolUDP, 81, false), side: "egress", src: "x/a", dst: "y/a",
			policies: []string{"x/a-egress-80"}, protocol: "UDP", family: "IPv6"},
		{target: c.target("y/a", "x/b", corev1.ProtocolTCP, 80, true), side: "ingress", src: "y/a", dst: "x/b",
			policies: []string{"x/audit-b"}, protocol: "TCP", family: "IPv4", audit: true},
	} {
		start := time.Now()
		probed := make(chan []lab.Result, 1)
		go func() {
			results, err := c.lab.ProbeTargets(t.Context(), []lab.Target{tc.target})
			if err != nil {
				t.Error(err)
			}
			probed <- results
		}()
		line, at := waitDeniedLine(t, a.LogPath, start, func(l deniedLine) bool {
			return l.Src == c.podIP(tc.target.From, tc.target.IP.Is4()) && l.Dst == tc.target.IP.String() && l.DstPort == int(tc.target.Port)
		})
		msg := "connection denied"
		if tc.audit {
			msg = "connection would be denied"
		}
		if line.Msg != msg || line.Side != tc.side || line.SrcPod != tc.src || line.DstPod != tc.dst ||
			!slices.Equal(line.Policies, tc.policies) || line.Protocol != tc.protocol || line.Family != tc.family {
			t.Errorf("log line %+v, want side %s, pods %s -> %s, policies %v, %s %s", line, tc.side, tc.src, tc.dst, tc.policies, tc.family, tc.protocol)
		}
		t.Logf("%s -> %s: logged %v after the probe started", tc.src, tc.dst, at.Round(time.Millisecond))
		if r := <-probed; len(r) != 1 || r[0].Connected != tc.audit {
			t.Fatalf("%s -> %s: %+v; want connected=%v", tc.src, tc.dst, r, tc.audit)
		}
	}

	samples, _ := a.Metrics(t)
	for _, want := range []string{`direction="ingress",namespace="y"`, `direction="egress",namespace="x"`} {
		if v, ok := framework.Value(samples, "kube_fence_denied_packets_total", want); !ok || v < 1 {
			t.Errorf("kube_fence_denied_packets_total{%s} = %v (present %v), want at least 1", want, v, ok)
		}
	}
	if v, ok := framework.Value(samples, "kube_fence_would_deny_packets_total", `direction="ingress",namespace="x"`); !ok || v < 1 {
		t.Errorf("kube_fence_would_deny_packets_total{direction=\"ingress\",namespace=\"x\"} = %v (present %v), want at least 1", v, ok)
	}
	if v, ok := framework.Value(samples, "kube_fence_denied_log_suppressed_total", `direction="ingress",mode="deny"`); !ok || v != 0 {
		t.Errorf("kube_fence_denied_log_suppressed_total{direction=\"ingress\"} = %v (present %v), want 0 for two probes", v, ok)
	}
}

// target is one probe between two of the env's pods.
func (c *env) target(from, to string, proto corev1.Protocol, port int32, v4 bool) lab.Target {
	for _, t := range c.lab.Targets() {
		if t.From == from && t.To == to && t.Protocol == proto && t.Port == port && t.IP.Is4() == v4 {
			return t
		}
	}
	c.t.Fatalf("no probe %s -> %s %s/%d", from, to, proto, port)
	return lab.Target{}
}

// podIP is the address of one family of a pod of the lab.
func (c *env) podIP(key string, v4 bool) string {
	for _, p := range c.lab.Snapshot().Pods {
		for _, ip := range p.IPs {
			if p.Key() == key && ip.Is4() == v4 {
				return ip.String()
			}
		}
	}
	c.t.Fatalf("pod %s has no address of that family", key)
	return ""
}

// waitDeniedLine waits up to a second after start for the first denied-
// connection line of the agent's log that match accepts, and returns it with
// when it was seen.
func waitDeniedLine(t *testing.T, path string, start time.Time, match func(deniedLine) bool) (deniedLine, time.Duration) {
	t.Helper()
	for {
		if l, ok := findDeniedLine(t, path, match); ok {
			return l, time.Since(start)
		}
		if time.Since(start) > time.Second {
			t.Fatalf("no log line for the denied connection within 1s; last lines:\n%s", framework.TailFile(path, 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func findDeniedLine(t *testing.T, path string, match func(deniedLine) bool) (deniedLine, bool) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if !strings.Contains(s.Text(), `"side"`) {
			continue
		}
		var l deniedLine
		if err := json.Unmarshal(s.Bytes(), &l); err != nil {
			continue
		}
		if match(l) {
			return l, true
		}
	}
	return deniedLine{}, false
}
