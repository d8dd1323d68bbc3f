package conformance

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	npconformance "sigs.k8s.io/network-policy-api/conformance"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
	"github.com/kube-fence/kube-fence/internal/policy"
)

// This file holds the ClusterNetworkPolicy conformance cases of the
// network-policy-api (v0.3.0, its conformance/tests): their model, their
// policies (the upstream manifests themselves, embedded in that module) and
// the changes their subtests make. The cases are in cnp_cases.go. For now
// they are judged by the reference evaluator only (policy.Decide); the
// enforcement will run the same data with packets.

// HouseNamespacePrefix starts the name of every namespace of the model.
const HouseNamespacePrefix = "network-policy-conformance-"

// HouseLabel is the label the model puts on namespaces and pods.
const HouseLabel = "conformance-house"

// Houses are the model's namespaces holding ordinary pods, each with its
// StatefulSet's name; pods are <name>-0 and <name>-1.
var Houses = []struct{ House, StatefulSet string }{
	{"gryffindor", "harry-potter"},
	{"slytherin", "draco-malfoy"},
	{"hufflepuff", "cedric-diggory"},
	{"ravenclaw", "luna-lovegood"},
}

// The namespace of the host-network pods centaur-0 and centaur-1.
const forest = "forbidden-forrest" // sic, as upstream spells it

// hostNetworkPortBase is upstream's default start of the host-network port
// range (8 ports).
const hostNetworkPortBase = 34345

// HostNetworkPort returns the i-th port the host-network pods serve.
func HostNetworkPort(i int) int32 { return int32(hostNetworkPortBase + i) }

// housePorts are the container ports of every ordinary pod; only 80 (web)
// and 53 (dns) are named.
func housePorts() []cluster.ContainerPort {
	return []cluster.ContainerPort{
		{Name: "web", Port: 80, Protocol: corev1.ProtocolTCP},
		{Port: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		{Port: 5353, Protocol: corev1.ProtocolUDP},
		{Port: 9003, Protocol: corev1.ProtocolSCTP},
		{Port: 9005, Protocol: corev1.ProtocolSCTP},
	}
}

func centaurPorts() []cluster.ContainerPort {
	p := HostNetworkPort
	return []cluster.ContainerPort{
		{Name: fmt.Sprintf("web-%d", p(0)), Port: p(0), Protocol: corev1.ProtocolTCP},
		{Name: fmt.Sprintf("web-%d", p(1)), Port: p(1), Protocol: corev1.ProtocolTCP},
		{Name: fmt.Sprintf("dns-%d", p(2)), Port: p(2), Protocol: corev1.ProtocolUDP},
		{Name: fmt.Sprintf("dns-%d", p(4)), Port: p(4), Protocol: corev1.ProtocolUDP},
		{Port: p(6), Protocol: corev1.ProtocolSCTP},
		{Port: p(7), Protocol: corev1.ProtocolSCTP},
	}
}

// HousesModel returns the normalized snapshot of the upstream suite's
// model (conformance/base/manifests.yaml): five namespaces labelled
// conformance-house, two dual-stack pods in each of the four houses, and
// host-network pods in the forest. Nodes are labelled kubernetes.io/os=linux.
// With nodes > 1, pods <name>-0 run on n0 and <name>-1 on n1, as do
// centaur-0 and centaur-1; with one node there is only centaur-1 (the one
// the cases probe), since two host-network pods on one node would share
// their ports.
func HousesModel(nodes int) (*cluster.Snapshot, error) {
	s := &cluster.Snapshot{}
	for i := range max(nodes, 1) {
		name := fmt.Sprintf("n%d", i)
		s.Nodes = append(s.Nodes, &cluster.Node{Name: name, Labels: labels.Set{
			corev1.LabelOSStable: "linux", corev1.LabelHostname: name,
		}})
	}
	node := func(i int) string { return s.Nodes[i%len(s.Nodes)].Name }
	addNS := func(house string) string {
		ns := HouseNamespacePrefix + house
		s.Namespaces = append(s.Namespaces, &cluster.Namespace{Name: ns, Labels: labels.Set{
			HouseLabel: house, corev1.LabelMetadataName: ns,
		}})
		return ns
	}
	for _, h := range Houses {
		ns := addNS(h.House)
		for i := range 2 {
			name := fmt.Sprintf("%s-%d", h.StatefulSet, i)
			s.Pods = append(s.Pods, &cluster.Pod{
				Namespace: ns, Name: name, NodeName: node(i), Labels: statefulSetLabels(h.House, name, i),
				Phase: corev1.PodRunning, Ports: housePorts(),
			})
		}
	}
	ns := addNS(forest)
	for i := range 2 {
		if nodes <= 1 && i == 0 {
			continue
		}
		name := fmt.Sprintf("centaur-%d", i)
		s.Pods = append(s.Pods, &cluster.Pod{
			Namespace: ns, Name: name, NodeName: node(i), HostNetwork: true,
			Labels: statefulSetLabels(forest, name, i), Phase: corev1.PodRunning, Ports: centaurPorts(),
		})
	}
	if err := scenario.Normalize(s); err != nil {
		return nil, fmt.Errorf("normalize the houses model: %w", err)
	}
	return s, nil
}

// statefulSetLabels are a pod's labels: its template's, and those the
// StatefulSet controller adds (the upstream cases select on pod-name).
func statefulSetLabels(house, name string, i int) labels.Set {
	return labels.Set{HouseLabel: house, appsv1.StatefulSetPodNameLabel: name, appsv1.PodIndexLabel: fmt.Sprint(i)}
}

// CNPCase is one upstream ClusterNetworkPolicy conformance test: the
// manifest it applies to the model, then its subtests in order, each
// changing the objects as upstream patches them and probing. Changes carry
// over from one step to the next, as upstream's patches do.
type CNPCase struct {
	Name     string // the upstream test's ShortName
	Manifest string // the upstream manifest, a path in its conformance directory
	Steps    []CNPStep
}

// CNPStep is one upstream subtest, or a part of one when upstream changes
// the objects between its probes.
type CNPStep struct {
	Name    string // the upstream subtest's name, with "(part n)" for later parts
	Changes []CNPChange
	Probes  []CNPProbe
}

// CNPProbe is one upstream probe: a connection from one pod to another's
// address (any family both have), and whether it must connect.
type CNPProbe struct {
	From, To  string // house/pod, e.g. gryffindor/harry-potter-0
	Protocol  corev1.Protocol
	Port      int32
	Connected bool
}

// CNPChange is one edit of the desired state, as upstream's subtests make
// them.
type CNPChange struct {
	Action string
	Apply  func(s *cluster.Snapshot) error
}

// Load returns the model with nodes nodes and the case's manifest applied:
// the upstream file, templated as upstream does, decoded and validated as a
// lab scenario.
func (c CNPCase) Load(nodes int) (*cluster.Snapshot, error) {
	s, err := HousesModel(nodes)
	if err != nil {
		return nil, err
	}
	raw, err := npconformance.Manifests.ReadFile(c.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	tmpl, err := template.New(c.Manifest).Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.Name, c.Manifest, err)
	}
	var ports []int
	for i := range 8 {
		ports = append(ports, int(HostNetworkPort(i)))
	}
	var text bytes.Buffer
	if err := tmpl.Execute(&text, struct{ HostNetworkPorts []int }{ports}); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.Name, c.Manifest, err)
	}
	objs, err := scenario.Parse(text.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.Name, c.Manifest, err)
	}
	for _, p := range objs.ClusterNetworkPolicies {
		s.ClusterNetworkPolicies = append(s.ClusterNetworkPolicies, cluster.ClusterNetworkPolicyFromAPI(p))
	}
	for _, np := range objs.Policies {
		s.Policies = append(s.Policies, np.DeepCopy())
	}
	return s, nil
}

// Endpoints returns the probe's ends, one pair per address family both
// have; a host-network pod's addresses are its node's.
func (p CNPProbe) Endpoints(s *cluster.Snapshot) ([][2]policy.Endpoint, error) {
	from, to := housePod(s, p.From), housePod(s, p.To)
	if from == nil || to == nil {
		return nil, fmt.Errorf("probe %s -> %s: no such pod in the model", p.From, p.To)
	}
	var out [][2]policy.Endpoint
	for _, a := range from.IPs {
		for _, b := range to.IPs {
			if a.Is4() == b.Is4() {
				out = append(out, [2]policy.Endpoint{{Pod: from, IP: a}, {Pod: to, IP: b}})
			}
		}
	}
	return out, nil
}

func housePod(s *cluster.Snapshot, ref string) *cluster.Pod {
	for _, p := range s.Pods {
		if p.Namespace+"/"+p.Name == HouseNamespacePrefix+ref {
			return p
		}
	}
	return nil
}

func findCNP(s *cluster.Snapshot, name string) (*cluster.ClusterNetworkPolicy, error) {
	for _, p := range s.ClusterNetworkPolicies {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no ClusterNetworkPolicy %s", name)
}

func cnpRules(p *cluster.ClusterNetworkPolicy, egress bool) []cluster.CNPRule {
	if egress {
		return p.Egress
	}
	return p.Ingress
}

func direction(egress bool) string {
	if egress {
		return "egress"
	}
	return "ingress"
}

// editRule changes rule i of a policy's direction.
func editRule(action, name string, egress bool, i int, edit func(r *cluster.CNPRule)) CNPChange {
	return CNPChange{Action: action, Apply: func(s *cluster.Snapshot) error {
		p, err := findCNP(s, name)
		if err != nil {
			return err
		}
		rules := cnpRules(p, egress)
		if i >= len(rules) {
			return fmt.Errorf("clusternetworkpolicy %s has no spec.%s[%d]", name, direction(egress), i)
		}
		edit(&rules[i])
		return nil
	}}
}

// SwapRules swaps two rules of a policy's direction.
func SwapRules(name string, egress bool, i, j int) CNPChange {
	action := fmt.Sprintf("swap spec.%s[%d] and [%d] of clusternetworkpolicy %s", direction(egress), i, j, name)
	return CNPChange{Action: action, Apply: func(s *cluster.Snapshot) error {
		p, err := findCNP(s, name)
		if err != nil {
			return err
		}
		rules := cnpRules(p, egress)
		if i >= len(rules) || j >= len(rules) {
			return fmt.Errorf("%s: the policy has %d rules", action, len(rules))
		}
		rules[i], rules[j] = rules[j], rules[i]
		return nil
	}}
}

// NamedPortRule makes a rule's protocols a single destinationNamedPort.
func NamedPortRule(name string, egress bool, i int, port string) CNPChange {
	action := fmt.Sprintf("set spec.%s[%d].protocols of clusternetworkpolicy %s to destinationNamedPort %s", direction(egress), i, name, port)
	return editRule(action, name, egress, i, func(r *cluster.CNPRule) {
		r.Protocols = []cluster.CNPProtocol{{DestinationNamedPort: port}}
	})
}

// SetAction changes a rule's action.
func SetAction(name string, egress bool, i int, a cluster.CNPAction) CNPChange {
	action := fmt.Sprintf("set spec.%s[%d].action of clusternetworkpolicy %s to %s", direction(egress), i, name, a)
	return editRule(action, name, egress, i, func(r *cluster.CNPRule) { r.Action = a })
}

// SetPriority changes a policy's priority.
func SetPriority(name string, priority int32) CNPChange {
	return CNPChange{Action: fmt.Sprintf("set the priority of clusternetworkpolicy %s to %d", name, priority), Apply: func(s *cluster.Snapshot) error {
		p, err := findCNP(s, name)
		if err == nil {
			p.Priority = priority
		}
		return err
	}}
}

// DeleteNetworkPolicy deletes a NetworkPolicy of a house's namespace.
func DeleteNetworkPolicy(house, name string) CNPChange {
	ns := HouseNamespacePrefix + house
	return CNPChange{Action: "delete networkpolicy " + ns + "/" + name, Apply: func(s *cluster.Snapshot) error {
		n := len(s.Policies)
		s.Policies = slices.DeleteFunc(s.Policies, func(np *networkingv1.NetworkPolicy) bool {
			return np.Namespace == ns && np.Name == name
		})
		if len(s.Policies) == n {
			return fmt.Errorf("no networkpolicy %s/%s", ns, name)
		}
		return nil
	}}
}

// RelabelNamespace replaces a house namespace's labels with
// conformance-house=value (the API server keeps kubernetes.io/metadata.name).
func RelabelNamespace(house, value string) CNPChange {
	ns := HouseNamespacePrefix + house
	return CNPChange{Action: fmt.Sprintf("label namespace %s %s=%s only", ns, HouseLabel, value), Apply: func(s *cluster.Snapshot) error {
		for _, n := range s.Namespaces {
			if n.Name == ns {
				n.Labels = labels.Set{HouseLabel: value, corev1.LabelMetadataName: ns}
				return nil
			}
		}
		return fmt.Errorf("no namespace %s", ns)
	}}
}

// AcceptToPodAddresses puts first in a policy's egress an Accept rule to
// networks holding exactly the given pods' addresses. Upstream writes the
// pods' primary address, of the cluster's one family; the model is
// dual-stack, so each address of each pod is there, as a /32 or a /128.
func AcceptToPodAddresses(name string, pods ...string) CNPChange {
	action := fmt.Sprintf("put first in the egress of clusternetworkpolicy %s an Accept to the addresses of %v", name, pods)
	return CNPChange{Action: action, Apply: func(s *cluster.Snapshot) error {
		p, err := findCNP(s, name)
		if err != nil {
			return err
		}
		var nets []string
		for _, ref := range pods {
			pod := housePod(s, ref)
			if pod == nil {
				return fmt.Errorf("%s: no pod %s", action, ref)
			}
			for _, ip := range pod.IPs {
				nets = append(nets, netip.PrefixFrom(ip, ip.BitLen()).String())
			}
		}
		rule := cluster.CNPRule{Name: "allow-egress-to-specific-podIPs", Action: cluster.ActionAccept,
			Peers: []cluster.CNPPeer{{Networks: nets}}}
		p.Egress = append([]cluster.CNPRule{rule}, p.Egress...)
		return nil
	}}
}

// SetPodLabel sets a label on a model pod.
func SetPodLabel(pod, key, value string) CNPChange {
	return CNPChange{Action: fmt.Sprintf("label pod %s %s=%s", pod, key, value), Apply: func(s *cluster.Snapshot) error {
		p := housePod(s, pod)
		if p == nil {
			return fmt.Errorf("no pod %s", pod)
		}
		p.Labels = maps.Clone(p.Labels)
		p.Labels[key] = value
		return nil
	}}
}

// RemovePodLabel removes a label from a model pod.
func RemovePodLabel(pod, key string) CNPChange {
	return CNPChange{Action: fmt.Sprintf("remove label %s from pod %s", key, pod), Apply: func(s *cluster.Snapshot) error {
		p := housePod(s, pod)
		if p == nil {
			return fmt.Errorf("no pod %s", pod)
		}
		p.Labels = maps.Clone(p.Labels)
		delete(p.Labels, key)
		return nil
	}}
}
