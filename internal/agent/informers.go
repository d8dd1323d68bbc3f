package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-fence/kube-fence/internal/policy"
)

// startInformers starts watching pods, namespaces, NetworkPolicies and Nodes
// of the whole cluster and, when served, ClusterNetworkPolicies,
// feeding st, and waits until every cache has synced once: enforcing a
// half-listed cluster would open or close pods by mistake.
func startInformers(ctx context.Context, client kubernetes.Interface, st *store, cnps *cnpWatch) error {
	trim := informers.WithTransform(trimObject)
	all := informers.NewSharedInformerFactoryWithOptions(client, resyncNever, trim)

	pods := all.Core().V1().Pods().Informer()
	namespaces := all.Core().V1().Namespaces().Informer()
	policies := all.Networking().V1().NetworkPolicies().Informer()
	// Every Node, not only this one: ClusterNetworkPolicy nodes peers
	// select Nodes by label and match their addresses (the upstream
	// conformance suite's egress-node-peer tests reach another node's
	// host-network pods).
	nodes := all.Core().V1().Nodes().Informer()
	// Wait until the handlers, not only the caches, have seen every object
	// of the initial lists: an informer's cache is complete before its
	// handlers are called, and a first sync in between enforced part of
	// the cluster (at 10k pods, a table with a quarter of its elements).
	var synced []cache.InformerSynced
	for _, reg := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{pods, handlers(st.setPod, func(k string) { deleteKey(st, st.pods, k) })},
		{namespaces, handlers(st.setNamespace, func(k string) { deleteKey(st, st.namespaces, k) })},
		{policies, handlers(st.setPolicy, func(k string) { deleteKey(st, st.policies, k) })},
		{nodes, handlers(st.setNode, st.deleteNode)},
	} {
		h, err := reg.inf.AddEventHandler(reg.h)
		if err != nil {
			return fmt.Errorf("register informer handler: %w", err)
		}
		synced = append(synced, h.HasSynced)
	}
	cnpSynced, err := cnps.startup(ctx)
	if err != nil {
		return err
	}
	if cnpSynced != nil {
		synced = append(synced, cnpSynced)
	}
	go cnps.run(ctx)
	all.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("wait for the API server's initial lists: %w", context.Cause(ctx))
	}
	return nil
}

// trimObject keeps only what enforcement reads, before an object enters the
// informer cache: at 10k pods most of a pod's bytes are fields policy never
// looks at (managed fields, container specs, conditions). A pod is kept as
// the snapshot value the compiler reads (see podObject).
func trimObject(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return newPodObject(o), nil
	case *corev1.Namespace:
		return &corev1.Namespace{ObjectMeta: trimMeta(o.ObjectMeta)}, nil
	case *corev1.Node:
		out := &corev1.Node{ObjectMeta: trimMeta(o.ObjectMeta)}
		out.Spec.PodCIDR = o.Spec.PodCIDR
		out.Spec.PodCIDRs = o.Spec.PodCIDRs
		out.Status.Addresses = o.Status.Addresses
		return out, nil
	case *networkingv1.NetworkPolicy:
		meta := trimMeta(o.ObjectMeta)
		if mode, ok := o.Annotations[policy.ModeAnnotation]; ok { // audit mode
			meta.Annotations = map[string]string{policy.ModeAnnotation: mode}
		}
		return &networkingv1.NetworkPolicy{ObjectMeta: meta, Spec: o.Spec}, nil
	}
	return obj, nil // tombstones and anything else pass unchanged
}

func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            m.Name,
		Namespace:       m.Namespace,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
		Labels:          m.Labels,
	}
}

// resyncNever documents the zero resync period passed to the factories: the
// agent reacts to watch events and verifies the kernel on its own timer, so
// periodic relists of the API server would only add load.
const resyncNever = time.Duration(0)
