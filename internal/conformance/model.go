package conformance

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-fence/kube-fence/internal/cluster"
	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

// The upstream model: every namespace holds every pod, each pod serves every
// port over every protocol, with the container port named
// serve-<port>-<protocol>.
var (
	Namespaces  = []string{"x", "y", "z"}
	PodNames    = []string{"a", "b", "c"}
	PortNumbers = []int32{80, 81}
	Protocols   = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
)

// NamespaceLabel and PodLabel are the labels the model puts on namespaces
// (besides kubernetes.io/metadata.name) and pods.
const (
	NamespaceLabel = "ns"
	PodLabel       = "pod"
)

// PortName is the model's name of a container port: serve-80-tcp.
func PortName(port int32, proto corev1.Protocol) string {
	return fmt.Sprintf("serve-%d-%s", port, strings.ToLower(string(proto)))
}

// ModelPorts returns the container ports of a model pod.
func ModelPorts() []cluster.ContainerPort {
	var out []cluster.ContainerPort
	for _, proto := range Protocols {
		for _, port := range PortNumbers {
			out = append(out, cluster.ContainerPort{Name: PortName(port, proto), Port: port, Protocol: proto})
		}
	}
	return out
}

// ModelPod returns a running model pod labelled pod=<name>, without address
// or node (Normalize or the lab assign them).
func ModelPod(ns, name string) *cluster.Pod {
	return &cluster.Pod{
		Namespace: ns, Name: name,
		Labels: labels.Set{PodLabel: name},
		Phase:  corev1.PodRunning,
		Ports:  ModelPorts(),
	}
}

// Model returns the normalized snapshot of the upstream model. With nodes > 1
// it declares nodes n0, n1... and spreads the pods over them in turn (x/a on
// n0, x/b on n1, ...), so pairs on one node and pairs across nodes both
// occur; with nodes <= 1 every pod runs on the lab's single node. Pods are
// dual-stack.
func Model(nodes int) (*cluster.Snapshot, error) {
	s := &cluster.Snapshot{}
	for i := 0; i < nodes && nodes > 1; i++ {
		s.Nodes = append(s.Nodes, &cluster.Node{Name: fmt.Sprintf("n%d", i)})
	}
	k := 0
	for _, ns := range Namespaces {
		s.Namespaces = append(s.Namespaces, &cluster.Namespace{Name: ns, Labels: labels.Set{
			NamespaceLabel: ns, corev1.LabelMetadataName: ns,
		}})
		for _, name := range PodNames {
			p := ModelPod(ns, name)
			if nodes > 1 {
				p.NodeName = s.Nodes[k%nodes].Name
			}
			k++
			s.Pods = append(s.Pods, p)
		}
	}
	if err := scenario.Normalize(s); err != nil {
		return nil, fmt.Errorf("normalize the model: %w", err)
	}
	return s, nil
}
