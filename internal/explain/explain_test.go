package explain

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/plan"
	"github.com/kube-fence/kube-fence/internal/policy"
)

const policies = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "y", name: deny-all}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: "y", name: allow-web}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: x}}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: egress-dns}
spec:
  podSelector: {matchLabels: {role: locked}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: 53, protocol: UDP}]
`

func snapshot(t *testing.T) *cluster.Snapshot {
	t.Helper()
	s := &cluster.Snapshot{
		Namespaces: []*cluster.Namespace{
			{Name: "x", Labels: map[string]string{"team": "x", "kubernetes.io/metadata.name": "x"}},
			{Name: "y", Labels: map[string]string{"kubernetes.io/metadata.name": "y"}},
		},
		Nodes: []*cluster.Node{{Name: "n1", Addresses: addrs("10.0.0.254", "fd00::fe")}},
		Pods: []*cluster.Pod{
			pod("x", "a", nil, "10.0.0.1", "fd00::1"),
			pod("x", "locked", map[string]string{"role": "locked"}, "10.0.0.4"),
			pod("y", "b", map[string]string{"app": "web"}, "10.0.0.2", "fd00::2"),
			pod("y", "c", map[string]string{"app": "db"}, "10.0.0.3"),
			pod("y", "d", map[string]string{"app": "web"}, "10.0.0.5"),
		},
	}
	for _, doc := range strings.Split(policies, "\n---\n") {
		np := &networkingv1.NetworkPolicy{}
		if err := yaml.UnmarshalStrict([]byte(doc), np); err != nil {
			t.Fatal(err)
		}
		s.Policies = append(s.Policies, np)
	}
	return s
}

func pod(ns, name string, labels map[string]string, ips ...string) *cluster.Pod {
	return &cluster.Pod{Namespace: ns, Name: name, Labels: labels, NodeName: "n1", Phase: "Running", IPs: addrs(ips...)}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// summary is a verdict in one line, so a table of cases can pin everything.
func summary(v Verdict) string {
	sideSum := func(s Side) string {
		out := word(s.Allowed)
		if s.Reason != "" {
			out += " (" + s.Reason + ")"
		}
		if len(s.Policies) > 0 {
			out += " isolated by " + strings.Join(s.Policies, ",")
		}
		if len(s.AllowedBy) > 0 {
			out += " via " + strings.Join(s.AllowedBy, ",")
		}
		if m := s.NearestMiss; m != nil {
			out += " miss " + m.Rule + " " + missText(m)
		}
		return out
	}
	return v.Family + " " + v.FromIP + "->" + v.ToIP + ": " + word(v.Allowed) +
		" | egress " + sideSum(v.Egress) + " | ingress " + sideSum(v.Ingress)
}

func TestExplain(t *testing.T) {
	s := snapshot(t)
	cases := []struct {
		name  string
		q     Query
		wants []string
	}{{
		name: "a rule allows, both families",
		q:    Query{From: "x/a", To: "y/b", Protocol: plan.TCP, Port: 80},
		wants: []string{
			"IPv4 10.0.0.1->10.0.0.2: allowed | egress allowed (not isolated) | ingress allowed isolated by y/allow-web,y/deny-all via y/allow-web ingress[0]",
			"IPv6 fd00::1->fd00::2: allowed | egress allowed (not isolated) | ingress allowed isolated by y/allow-web,y/deny-all via y/allow-web ingress[0]",
		},
	}, {
		name: "the peer matches, the port does not; the ipBlock rule is IPv4 only",
		q:    Query{From: "x/a", To: "y/b", Protocol: plan.TCP, Port: 8080},
		wants: []string{
			"IPv4 10.0.0.1->10.0.0.2: allowed | egress allowed (not isolated) | ingress allowed isolated by y/allow-web,y/deny-all via y/allow-web ingress[1]",
			"IPv6 fd00::1->fd00::2: denied | egress allowed (not isolated) | ingress denied isolated by y/allow-web,y/deny-all miss y/allow-web ingress[0] the peer matches, the port does not",
		},
	}, {
		name: "the port matches, the peer does not",
		q:    Query{From: "fd00::9", To: "y/b", Protocol: plan.TCP, Port: 80},
		wants: []string{
			"IPv6 fd00::9->fd00::2: denied | egress allowed (not a pod under NetworkPolicy) | ingress denied isolated by y/allow-web,y/deny-all miss y/allow-web ingress[0] the port matches, the peer does not",
		},
	}, {
		name: "isolated by a policy without rules: no nearest miss",
		q:    Query{From: "x/a", To: "y/c", Protocol: plan.UDP, Port: 53},
		wants: []string{
			"IPv4 10.0.0.1->10.0.0.3: denied | egress allowed (not isolated) | ingress denied isolated by y/deny-all",
		},
	}, {
		name: "egress and ingress both decide; an address resolves to its pod",
		q:    Query{From: "10.0.0.4", To: "y/d", Protocol: plan.TCP, Port: 80},
		wants: []string{
			"IPv4 10.0.0.4->10.0.0.5: denied | egress denied isolated by x/egress-dns miss x/egress-dns egress[0] the peer matches, the port does not | ingress allowed isolated by y/allow-web,y/deny-all via y/allow-web ingress[0]",
		},
	}, {
		name: "the node may always reach its pods",
		q:    Query{From: "10.0.0.254", To: "y/c", Protocol: plan.TCP, Port: 5432},
		wants: []string{
			"IPv4 10.0.0.254->10.0.0.3: allowed | egress allowed (not a pod under NetworkPolicy) | ingress allowed (the other end is the pod's node)",
		},
	}, {
		name: "a pod talking to itself",
		q:    Query{From: "y/c", To: "10.0.0.3", Protocol: plan.TCP, Port: 1},
		wants: []string{
			"IPv4 10.0.0.3->10.0.0.3: allowed | egress allowed (same pod) | ingress allowed (same pod)",
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Explain(s, c.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range r.Verdicts {
				got = append(got, summary(v))
				ep := policy.Endpoint{Pod: podAt(s, v.FromIP), IP: netip.MustParseAddr(v.FromIP)}
				dp := policy.Endpoint{Pod: podAt(s, v.ToIP), IP: netip.MustParseAddr(v.ToIP)}
				if ref := policy.Allowed(s, ep, dp, c.q.Protocol, c.q.Port); ref != v.Allowed {
					t.Errorf("%s: explain says %v, the reference evaluator %v", v.Family, v.Allowed, ref)
				}
			}
			if strings.Join(got, "\n") != strings.Join(c.wants, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.wants, "\n"))
			}
		})
	}
}

func podAt(s *cluster.Snapshot, ip string) *cluster.Pod {
	a := netip.MustParseAddr(ip)
	for _, p := range s.Pods {
		for _, pa := range p.IPs {
			if pa == a {
				return p
			}
		}
	}
	return nil
}

func TestExplainInputErrors(t *testing.T) {
	s := snapshot(t)
	s.Pods = append(s.Pods, &cluster.Pod{Namespace: "y", Name: "pending"})
	for _, c := range []struct {
		q    Query
		want string
	}{
		{Query{From: "x", To: "y/b"}, `--from "x": want NAMESPACE/POD or an IP address`},
		{Query{From: "x/a", To: "y/b/c"}, `--to "y/b/c": want NAMESPACE/POD or an IP address`},
		{Query{From: "x/nope", To: "y/b"}, `--from x/nope: no such pod`},
		{Query{From: "x/a", To: "y/pending"}, `--to y/pending: the pod has no address`},
		{Query{From: "fd00::9", To: "y/c"}, `fd00::9 (fd00::9) and y/c (10.0.0.3) share no address family`},
	} {
		_, err := Explain(s, c.q)
		if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an input error containing %q", c.q, err, c.want)
		}
	}
}

// TestJSONSchema pins the documented JSON form (docs/observability.md):
// field names, and lists that are never null.
func TestJSONSchema(t *testing.T) {
	r, err := Explain(snapshot(t), Query{From: "x/a", To: "y/c", Protocol: plan.TCP, Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"verdicts":[{"family":"IPv4","from":"x/a","from_ip":"10.0.0.1","to":"y/c","to_ip":"10.0.0.3",` +
		`"protocol":"TCP","port":80,"allowed":false,` +
		`"egress":{"allowed":true,"isolated":false,"policies":[],"allowed_by":[],"reason":"not isolated"},` +
		`"ingress":{"allowed":false,"isolated":true,"policies":["y/deny-all"],"allowed_by":[]}}]}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWriteText(t *testing.T) {
	r, err := Explain(snapshot(t), Query{From: "x/a", To: "y/b", Protocol: plan.TCP, Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `IPv4 x/a 10.0.0.1 -> y/b 10.0.0.2 TCP/8080: allowed
  egress of x/a: allowed (not isolated)
  ingress of y/b: allowed by y/allow-web ingress[1]
    isolated by y/allow-web, y/deny-all

IPv6 x/a fd00::1 -> y/b fd00::2 TCP/8080: denied
  egress of x/a: allowed (not isolated)
  ingress of y/b: denied
    isolated by y/allow-web, y/deny-all
    nearest miss: y/allow-web ingress[0]: the peer matches, the port does not
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestExplainAudit: a policy in audit mode changes no verdict; an allowed
// connection it would deny says so, naming it, in text and JSON.
func TestExplainAudit(t *testing.T) {
	s := snapshot(t)
	audit := &networkingv1.NetworkPolicy{}
	audit.Namespace, audit.Name = "x", "new-policy"
	audit.Annotations = map[string]string{policy.ModeAnnotation: policy.ModeAudit}
	audit.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress} // isolates every pod of x
	s.Policies = append(s.Policies, audit)
	r, err := Explain(s, Query{From: "y/b", To: "x/a", Protocol: plan.TCP, Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Verdicts {
		if !v.Allowed || v.Ingress.Isolated || len(v.WouldBeDeniedBy) != 1 || v.WouldBeDeniedBy[0] != "x/new-policy" {
			t.Errorf("%s: allowed %v, ingress isolated %v, would be denied by %v; want allowed, not isolated, [x/new-policy]",
				v.Family, v.Allowed, v.Ingress.Isolated, v.WouldBeDeniedBy)
		}
	}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "TCP/80: allowed; would be denied by x/new-policy (audit)") {
		t.Errorf("text lacks the audit verdict:\n%s", b.String())
	}
	data, _ := json.Marshal(r)
	if !strings.Contains(string(data), `"would_be_denied_by":["x/new-policy"]`) {
		t.Errorf("JSON lacks would_be_denied_by: %s", data)
	}
	// A connection the audit policy does not change has no audit verdict.
	r, err = Explain(s, Query{From: "x/a", To: "y/b", Protocol: plan.TCP, Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	data, _ = json.Marshal(r)
	if strings.Contains(string(data), "would_be_denied_by") {
		t.Errorf("an unaffected connection has an audit verdict: %s", data)
	}
}
