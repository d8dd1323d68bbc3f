package scenario

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

const twoPods = `
# a comment before the first document
apiVersion: v1
kind: Namespace
metadata:
  name: x
  labels: {team: blue}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  containers:
  - name: c
    image: ignored
    ports:
    - {name: serve-80-tcp, containerPort: 80}
    - {name: serve-80-udp, containerPort: 80, protocol: UDP}
--- # a separator with a comment
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "y"},
 "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 81, "protocol": "SCTP"}]}]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: z}
spec:
  podSelector: {}
`

func TestParseValidScenario(t *testing.T) {
	s, err := Parse([]byte(twoPods))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Namespaces) != 1 || len(s.Pods) != 2 || len(s.Policies) != 1 || len(s.Nodes) != 0 {
		t.Fatalf("got %d namespaces, %d pods, %d policies, %d nodes; want 1, 2, 1, 0",
			len(s.Namespaces), len(s.Pods), len(s.Policies), len(s.Nodes))
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ns := range snap.Namespaces {
		names = append(names, ns.Name)
		if ns.Labels[corev1.LabelMetadataName] != ns.Name {
			t.Errorf("namespace %s lacks its kubernetes.io/metadata.name label: %v", ns.Name, ns.Labels)
		}
	}
	if want := []string{"x", "y", "z"}; !slices.Equal(names, want) {
		t.Errorf("namespaces = %v, want %v (y and z implicit, in order of use)", names, want)
	}
	if len(snap.Nodes) != 1 || snap.Nodes[0].Name != DefaultNode {
		t.Fatalf("nodes = %+v, want the one default node", snap.Nodes)
	}
	wantIPs := map[string][]string{
		"x/a": {"10.42.0.2", "fd00:10:42::2"},
		"y/b": {"10.42.0.3", "fd00:10:42::3"},
	}
	for _, p := range snap.Pods {
		if got := addrStrings(p.IPs); !slices.Equal(got, wantIPs[p.Key()]) {
			t.Errorf("pod %s IPs = %v, want %v", p.Key(), got, wantIPs[p.Key()])
		}
		if p.NodeName != DefaultNode || p.Phase != corev1.PodRunning {
			t.Errorf("pod %s node %q phase %q, want %s Running", p.Key(), p.NodeName, p.Phase, DefaultNode)
		}
	}
	if got := snap.Pods[1].Ports; len(got) != 1 || got[0].Protocol != corev1.ProtocolSCTP || got[0].Port != 81 {
		t.Errorf("pod y/b ports = %+v, want 81/SCTP", got)
	}
	if got := addrStrings(snap.Nodes[0].Addresses); !slices.Equal(got, []string{"10.42.0.1", "fd00:10:42::1"}) {
		t.Errorf("node addresses = %v, want the gateways", got)
	}
}

const jsonStreamScenario = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"}}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: c}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: other}
`

func TestParseJSONStreamAndList(t *testing.T) {
	in := jsonStreamScenario
	s, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range s.Pods {
		keys = append(keys, p.Namespace+"/"+p.Name)
	}
	if want := []string{"default/a", "default/b", "default/c"}; !slices.Equal(keys, want) {
		t.Errorf("pods = %v, want %v", keys, want)
	}
	if len(s.Namespaces) != 1 || s.Namespaces[0].Name != "other" {
		t.Errorf("namespaces = %v, want [other]", s.Namespaces)
	}
}

// parseErrorCases are invalid scenarios and what their errors must say; the
// fuzzer starts from them too.
var parseErrorCases = func() []struct {
	name string
	in   string
	want []string // substrings of one problem line each
} {
	pod := func(extra string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n" + extra
	}
	return []struct {
		name string
		in   string
		want []string
	}{
		{"unknown field with path", pod("spec:\n  containers:\n  - name: c\n    portz: []\n"),
			[]string{`document 1 (line 1): pod x/a: unknown field "spec.containers[0].portz"`}},
		{"duplicate key", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n",
			[]string{`document 1 (line 1)`, `"metadata" already set`}},
		{"JSON unknown field", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n","labelz":{}}}`,
			[]string{`namespace n: unknown field "metadata.labelz"`}},
		{"unsupported kind", "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
			[]string{`document 1 (line 2): apiVersion "v1" kind "Service" is not supported`}},
		{"missing kind", "apiVersion: v1\nmetadata: {name: s}\n", []string{"kind: Required value"}},
		{"wrong apiVersion", "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: s}\n",
			[]string{`apiVersion "extensions/v1beta1" kind "NetworkPolicy" is not supported`}},
		{"type error", pod("spec:\n  containers:\n  - ports: [{containerPort: eighty}]\n"),
			[]string{"pod x/a: json: cannot unmarshal string"}},
		{"second document located", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n\n# note\napiVersion: v1\nkind: Nope\n",
			[]string{`document 2 (line 7)`}},
		{"bad protocol", pod("spec:\n  containers:\n  - name: c\n    ports:\n    - {containerPort: 80}\n    - {containerPort: 81, protocol: ICMP}\n"),
			[]string{`pod x/a (document 1 (line 1)): spec.containers[0].ports[1].protocol: Unsupported value: "ICMP"`}},
		{"bad port and name", pod("spec:\n  containers:\n  - ports:\n    - {containerPort: 70000, name: Not_Valid}\n"),
			[]string{"spec.containers[0].ports[0].containerPort: Invalid value: 70000", "spec.containers[0].ports[0].name: Invalid value: \"Not_Valid\""}},
		{"duplicate port name", pod("spec:\n  containers:\n  - ports: [{containerPort: 80, name: web}]\n  - ports: [{containerPort: 81, name: web}]\n"),
			[]string{`spec.containers[1].ports[0].name: Duplicate value: "web"`}},
		{"bad label", pod("") + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: nn, labels: {\"a b\": c}}\n",
			[]string{`namespace nn (document 2 (line 5)): metadata.labels: Invalid value: "a b"`}},
		{"bad pod IP", pod("status: {podIPs: [{ip: 10.0.0.300}]}\n"),
			[]string{`status.podIPs[0].ip: Invalid value: "10.0.0.300": not an IP address`}},
		{"two IPv4", pod("status: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}\n"),
			[]string{`status.podIPs[1].ip: Invalid value: "10.0.0.2": at most one address per IP family`}},
		{"duplicate IP", pod("status: {podIPs: [{ip: 10.0.0.1}]}\n") + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nstatus: {podIPs: [{ip: 10.0.0.1}]}\n",
			[]string{`pod default/b (document 2 (line 6)): status.podIPs[0].ip: Invalid value: "10.0.0.1": already the address of pod x/a`}},
		{"duplicate pod", pod("") + "---\n" + pod(""), []string{`pod x/a (document 2 (line 5)): metadata.name: Duplicate value: "a"`}},
		{"unknown node", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n" + pod("spec: {nodeName: n2}\n"),
			[]string{`pod x/a (document 2 (line 5)): spec.nodeName: Not found: "n2"`}},
		{"node needed", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\n" + pod(""),
			[]string{`spec.nodeName: Required value: the scenario declares 2 nodes`}},
		{"overlapping node CIDRs", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDRs: [10.1.0.0/16]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\nspec: {podCIDRs: [10.1.2.0/24]}\n",
			[]string{`node n2 (document 2 (line 6)): spec.podCIDRs[0]: Invalid value: "10.1.2.0/24": overlaps another node's pod CIDR 10.1.0.0/16`}},
		{"bad families annotation", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, annotations: {lab.kube-fence.io/ip-families: IPv5}}\n",
			[]string{`metadata.annotations[lab.kube-fence.io/ip-families]: Invalid value: "IPv5"`}},
		{"hostNetwork with IPs", pod("spec: {hostNetwork: true}\nstatus: {podIP: 10.0.0.1}\n"),
			[]string{"status.podIPs: Forbidden: a hostNetwork pod takes its node's addresses"}},
		{"YAML boolean", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: y}\n",
			[]string{`cannot unmarshal bool into Go struct field ObjectMeta.metadata.namespace of type string (unquoted y, n, yes`}},
		{"null key", "apiVersion: v1\nkind: Pod\n?\n", []string{"document 1 (line 1): a mapping key is null"}},
		{"unnamed", "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n", []string{"metadata.name: Required value"}},
		{"policy protocol", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: ICMP}]}]\n",
			[]string{`networkpolicy default/p (document 1 (line 1)): spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP"`}},
	}
}()

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.in)
			}
			if !IsInvalid(err) {
				t.Errorf("error %v is not an InvalidError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

const snapshotScenario = `
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
spec: {podCIDRs: [192.168.7.0/24]}
---
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.42.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {nodeName: n1}
---
apiVersion: v1
kind: Pod
metadata: {name: c, annotations: {lab.kube-fence.io/ip-families: IPv6}}
spec: {nodeName: n1}
---
apiVersion: v1
kind: Pod
metadata: {name: d}
spec: {nodeName: n2}
---
apiVersion: v1
kind: Pod
metadata: {name: e}
spec: {nodeName: n2, hostNetwork: true}
---
apiVersion: v1
kind: Pod
metadata: {name: f}
spec: {nodeName: n2}
status: {phase: Succeeded}
`

func TestSnapshotPlacementAndAddresses(t *testing.T) {
	in := snapshotScenario
	s, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"default/a": {"10.42.0.2"},                  // given, one family only
		"default/b": {"10.42.0.3", "fd00:10:42::2"}, // .2 was taken
		"default/c": {"fd00:10:42::3"},
		"default/d": {"192.168.7.2"},                // n2 declared only an IPv4 pod CIDR
		"default/e": {"10.41.0.2", "fd00:10:41::2"}, // hostNetwork: n2's fabric addresses
		"default/f": nil,                            // finished: no address
	}
	for _, p := range snap.Pods {
		if got := addrStrings(p.IPs); !slices.Equal(got, want[p.Key()]) {
			t.Errorf("pod %s IPs = %v, want %v", p.Key(), got, want[p.Key()])
		}
	}
	if got := addrStrings(snap.Nodes[1].Addresses); !slices.Equal(got, []string{"10.41.0.2", "fd00:10:41::2", "192.168.7.1"}) {
		t.Errorf("node n2 addresses = %v", got)
	}
	// Normalizing again changes nothing; a new pod gets the next free address.
	snap.Pods = append(snap.Pods, &cluster.Pod{Namespace: "late", Name: "g", NodeName: "n1"})
	if err := Normalize(snap); err != nil {
		t.Fatal(err)
	}
	if got := addrStrings(snap.Pods[1].IPs); !slices.Equal(got, want["default/b"]) {
		t.Errorf("after normalizing again pod b IPs = %v", got)
	}
	if got := addrStrings(snap.Pods[6].IPs); !slices.Equal(got, []string{"10.42.0.4", "fd00:10:42::4"}) {
		t.Errorf("late pod IPs = %v", got)
	}
	if snap.Namespaces[len(snap.Namespaces)-1].Name != "late" {
		t.Errorf("namespace of the late pod was not added: %v", snap.Namespaces)
	}
}

func TestNormalizeErrors(t *testing.T) {
	snap := &cluster.Snapshot{
		Nodes: []*cluster.Node{{Name: "n1"}, {Name: "n2"}},
		Pods:  []*cluster.Pod{{Namespace: "x", Name: "a"}, {Namespace: "x", Name: "b", NodeName: "n9"}},
	}
	err := Normalize(snap)
	if err == nil || !IsInvalid(err) {
		t.Fatalf("Normalize = %v, want an InvalidError", err)
	}
	for _, w := range []string{"pod x/a: spec.nodeName: Required value", `pod x/b: spec.nodeName: Not found: "n9"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func TestSingleNodeRewritesNodeName(t *testing.T) {
	snap := &cluster.Snapshot{Pods: []*cluster.Pod{{Namespace: "x", Name: "a", NodeName: "k3s-server-1"}}}
	if err := Normalize(snap); err != nil {
		t.Fatal(err)
	}
	if snap.Pods[0].NodeName != DefaultNode {
		t.Errorf("nodeName = %q, want %q", snap.Pods[0].NodeName, DefaultNode)
	}
}

func TestAddressPlan(t *testing.T) {
	if got := DefaultPodCIDRs(3); got[0].String() != "10.42.3.0/24" || got[1].String() != "fd00:10:42:3::/64" {
		t.Errorf("DefaultPodCIDRs(3) = %v", got)
	}
	if got := FabricAddrs(0); got[0].String() != "10.41.0.1/24" || got[1].String() != "fd00:10:41::1/64" {
		t.Errorf("FabricAddrs(0) = %v", got)
	}
	full := map[netip.Addr]string{}
	c := netip.MustParsePrefix("10.0.0.0/30")
	if a, ok := nextFree(c, full); !ok || a.String() != "10.0.0.2" {
		t.Errorf("nextFree in /30 = %v %v, want 10.0.0.2", a, ok)
	}
	full[netip.MustParseAddr("10.0.0.2")] = "x"
	if a, ok := nextFree(c, full); ok {
		t.Errorf("nextFree handed out %v, the broadcast address", a)
	}
}

func addrStrings(ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}
