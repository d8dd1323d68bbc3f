package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// ScenarioYAML writes a snapshot as a lab scenario (`kube-fence lab run -f`):
// one multi-document YAML of its Nodes, Namespaces, Pods (with their
// addresses, so a replay probes the very same ones) and NetworkPolicies.
// header, when not empty, is written first as comment lines.
func ScenarioYAML(snap *cluster.Snapshot, header string) ([]byte, error) {
	var objs []any
	for _, n := range snap.Nodes {
		node := &corev1.Node{TypeMeta: typeMeta("v1", "Node"), ObjectMeta: metav1.ObjectMeta{Name: n.Name}}
		for _, c := range n.PodCIDRs {
			node.Spec.PodCIDRs = append(node.Spec.PodCIDRs, c.String())
		}
		objs = append(objs, node)
	}
	for _, ns := range snap.Namespaces {
		objs = append(objs, &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"),
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: sortedLabels(ns.Labels)}})
	}
	for _, p := range snap.Pods {
		objs = append(objs, apiPod(p, len(snap.Nodes) > 1))
	}
	for _, np := range snap.Policies {
		cp := np.DeepCopy()
		cp.TypeMeta = typeMeta("networking.k8s.io/v1", "NetworkPolicy")
		objs = append(objs, cp)
	}
	for _, p := range snap.ClusterNetworkPolicies {
		objs = append(objs, cnpToAPI(p))
	}
	var b bytes.Buffer
	for line := range bytes.Lines([]byte(header)) {
		b.WriteString("# " + string(bytes.TrimRight(line, "\n")) + "\n")
	}
	for _, o := range objs {
		y, err := compactYAML(o)
		if err != nil {
			return nil, fmt.Errorf("write scenario: %w", err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func sortedLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	return maps.Clone(l)
}

func apiPod(p *cluster.Pod, withNode bool) *corev1.Pod {
	out := &corev1.Pod{
		TypeMeta:   typeMeta("v1", "Pod"),
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: sortedLabels(p.Labels)},
		Spec:       corev1.PodSpec{HostNetwork: p.HostNetwork},
		Status:     corev1.PodStatus{Phase: p.Phase},
	}
	if withNode {
		out.Spec.NodeName = p.NodeName
	}
	c := corev1.Container{Name: "c"}
	for _, cp := range p.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.Port, Protocol: cp.Protocol})
	}
	out.Spec.Containers = []corev1.Container{c}
	if !p.HostNetwork {
		for _, ip := range slices.Clone(p.IPs) {
			out.Status.PodIPs = append(out.Status.PodIPs, corev1.PodIP{IP: ip.String()})
		}
	}
	return out
}

// compactYAML writes an object without the empty fields the API types
// print anyway (creationTimestamp: null, status: {}, a Node's empty
// nodeInfo). NetworkPolicies are written whole, but for their metadata:
// there an empty list (ingress: []) is not the same as none.
func compactYAML(o any) ([]byte, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	if _, isPolicy := o.(*networkingv1.NetworkPolicy); isPolicy {
		m["metadata"] = prune(m["metadata"])
	} else {
		m = prune(m).(map[string]any)
	}
	return yaml.Marshal(m)
}

// prune drops nulls, empty strings, zeros, false and empty maps and lists
// from maps, recursively.
func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			e = prune(e)
			if empty(e) {
				delete(t, k)
			} else {
				t[k] = e
			}
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = prune(e)
		}
		return t
	}
	return v
}

func empty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case float64:
		return t == 0
	case bool:
		return !t
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}
