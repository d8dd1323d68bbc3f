package agent

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// podObject is what the informer cache keeps of a pod: the snapshot value
// the compiler reads, converted once when the pod changes, and the metadata
// the cache keys it by. Even trimmed, a corev1.Pod weighs about 2 KiB of
// mostly empty fields, and the store held a converted copy besides: at 10k
// pods that was a third of the agent's heap. The store keeps the same
// cluster.Pod the cache holds.
type podObject struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	pod *cluster.Pod
	err error // why the pod has an unusable field; pod is nil then
}

func newPodObject(in *corev1.Pod) *podObject {
	o := &podObject{ObjectMeta: trimMeta(in.ObjectMeta)}
	o.pod, o.err = cluster.PodFromAPI(in) // its labels are the same map as o's
	return o
}

// DeepCopyObject makes podObject a runtime.Object. The pod value is shared:
// nothing modifies it once converted.
func (o *podObject) DeepCopyObject() runtime.Object {
	c := *o
	o.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}
