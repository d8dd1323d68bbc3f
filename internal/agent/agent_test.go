package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kube-fence/kube-fence/internal/nft/kernel"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	cnpfake "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned/fake"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/nft"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// These tests run the whole agent against an in-memory API (client-go's fake
// clientset, which validates nothing, so invalid objects can be fed too) and
// the real kernel in a throwaway network namespace. The end-to-end tests in
// test/e2e do the same against a real API server.

type harness struct {
	t      *testing.T
	ns     *netns.NS
	client *fake.Clientset
	cancel context.CancelFunc
	done   chan error
	reader *kernel.Conn
}

func startAgent(t *testing.T, mutate func(*Config), objects ...runtime.Object) *harness {
	t.Helper()
	testenv.RequireRoot(t)
	ns := testenv.NetNS(t)
	client := fake.NewClientset(objects...)
	cfg := Defaults()
	cfg.NodeName = "node-1"
	cfg.MetricsAddr, cfg.HealthAddr = "", ""
	cfg.NetNSFD = ns.FD()
	cfg.Ownership = kernel.OwnershipOff // so the tests can tamper as another process would
	cfg.VerifyInterval = time.Hour      // notifications, not the timer, must catch tampering
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ns: ns, client: client, cancel: cancel, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() { h.done <- Run(ctx, cfg, client, cnpfake.NewSimpleClientset(), log) }()
	t.Cleanup(h.stop)
	var err error
	h.reader, err = kernel.Open(kernel.Options{NetNSFD: ns.FD(), Ownership: kernel.OwnershipOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.reader.Close() })
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("agent returned %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("agent did not stop within 10s of its context ending")
	}
}

// eventually polls cond until it holds or the bound passes, and says how
// long it took.
func (h *harness) eventually(bound time.Duration, what string, cond func(text string) bool) time.Duration {
	h.t.Helper()
	start := time.Now()
	for {
		text := h.tableText()
		if cond(text) {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			h.t.Fatalf("%s: not within %v; table:\n%s", what, bound, text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tableText lists the table as kube-fence reads it back (without rule texts,
// so it relies on set elements, which print fully).
func (h *harness) tableText() string {
	t, err := h.reader.Read()
	if err != nil || t == nil {
		return ""
	}
	var b strings.Builder
	for _, name := range t.SetNames() {
		s := t.Sets[name]
		for _, e := range s.Elems {
			b.WriteString(name + " " + nft.ElemText(s.Type, e) + "\n")
		}
	}
	for _, name := range t.ChainNames() {
		b.WriteString("chain " + name + "\n")
	}
	return b.String()
}

func node() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "node-1-uid"},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{"10.42.0.0/24", "fd00:10:42::/64"}},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.100.1"}}},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pod(ns, name, nodeName string, labels map[string]string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func denyAll(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

func TestAgentEnforcesChangesAndRepairs(t *testing.T) {
	h := startAgent(t, nil, node(), namespace("x", nil),
		pod("x", "a", "node-1", map[string]string{"pod": "a"}, "10.42.0.10", "fd00:10:42::10"),
		pod("x", "remote", "node-2", map[string]string{"pod": "r"}, "10.42.1.10"))
	ctx := context.Background()

	h.eventually(10*time.Second, "first sync", func(s string) bool {
		return strings.Contains(s, `ingress-pods-v4 10.42.0.10 comment "x/a" : accept`) &&
			strings.Contains(s, "pod-cidrs-v4 10.42.0.0/24") && !strings.Contains(s, "10.42.1.10 comment")
	})

	// A policy isolating x/a reaches the kernel within a second.
	if _, err := h.client.NetworkingV1().NetworkPolicies("x").Create(ctx, denyAll("x", "deny"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := h.eventually(time.Second, "policy created", func(s string) bool {
		return strings.Contains(s, `ingress-pods-v4 10.42.0.10 comment "x/a" : goto ingress-`)
	})
	t.Logf("policy create reached the kernel in %v", took)

	// A new local pod appears: an element, within a second.
	if _, err := h.client.CoreV1().Pods("x").Create(ctx, pod("x", "b", "node-1", nil, "10.42.0.11"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually(time.Second, "pod created", func(s string) bool {
		return strings.Contains(s, `ingress-pods-v4 10.42.0.11 comment "x/b" : goto ingress-`)
	})

	// Tampering by another process is repaired within a second, through
	// the change notification (the verify interval is an hour here).
	for _, tamper := range [][]string{
		{"delete", "element", "inet", nft.TableName, "ingress-pods-v4", "{", "10.42.0.11", "}"},
		{"delete", "table", "inet", nft.TableName},
		{"flush", "ruleset"},
	} {
		if out, err := h.ns.Command("nft", tamper...); err != nil {
			t.Fatalf("nft %v: %v\n%s", tamper, err, out)
		}
		took := h.eventually(time.Second, "repair after nft "+strings.Join(tamper, " "), func(s string) bool {
			return strings.Contains(s, `ingress-pods-v4 10.42.0.11 comment "x/b" : goto ingress-`)
		})
		t.Logf("nft %s repaired in %v", strings.Join(tamper, " "), took)
	}

	// The policy goes: the pods are open again.
	if err := h.client.NetworkingV1().NetworkPolicies("x").Delete(ctx, "deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually(time.Second, "policy deleted", func(s string) bool {
		return strings.Contains(s, `ingress-pods-v4 10.42.0.11 comment "x/b" : accept`) && !strings.Contains(s, "chain ingress-i")
	})

	// SIGTERM leaves the table in force.
	h.stop()
	if !strings.Contains(h.tableText(), `ingress-pods-v4 10.42.0.10 comment "x/a" : accept`) {
		t.Error("table gone after the agent stopped; want it left in place")
	}
}

func TestAgentReportsBadPolicyAndEnforcesTheRest(t *testing.T) {
	bad := denyAll("x", "bad")
	bad.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}}}}
	h := startAgent(t, nil, node(), namespace("x", nil), namespace("y", nil),
		pod("x", "a", "node-1", nil, "10.42.0.10"), pod("y", "b", "node-1", nil, "10.42.0.11"),
		bad, denyAll("y", "good"))
	h.eventually(10*time.Second, "both pods isolated", func(s string) bool {
		return strings.Contains(s, `ingress-pods-v4 10.42.0.10 comment "x/a" : goto ingress-`) &&
			strings.Contains(s, `ingress-pods-v4 10.42.0.11 comment "y/b" : goto ingress-`)
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, err := h.client.CoreV1().Events("x").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Reason == ReasonPolicyProblem && ev.InvolvedObject.Name == "bad" && strings.Contains(ev.Message, "spec.ingress[0].from[0].ipBlock.cidr") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event naming the field on x/bad; events: %+v", ReasonPolicyProblem, evs.Items)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
