package lister

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	cnpfake "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned/fake"
)

// TestSnapshotClusterNetworkPolicies: ClusterNetworkPolicies are listed
// beside the rest, and an API server without their CRD (a 404) gives none
// rather than an error.
func TestSnapshotClusterNetworkPolicies(t *testing.T) {
	kube := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}})
	cnp := &v1beta1.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-all"},
		Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 5,
			Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}},
	}
	s, _, err := Snapshot(t.Context(), kube, cnpfake.NewSimpleClientset(cnp))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ClusterNetworkPolicies) != 1 || s.ClusterNetworkPolicies[0].Name != "deny-all" || s.ClusterNetworkPolicies[0].Priority != 5 {
		t.Errorf("ClusterNetworkPolicies = %+v, want deny-all with priority 5", s.ClusterNetworkPolicies)
	}

	noCRD := cnpfake.NewSimpleClientset()
	noCRD.PrependReactor("list", "clusternetworkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "policy.networking.k8s.io", Resource: "clusternetworkpolicies"}, "")
	})
	s, _, err = Snapshot(t.Context(), kube, noCRD)
	if err != nil || len(s.ClusterNetworkPolicies) != 0 || len(s.Namespaces) != 1 {
		t.Errorf("without the CRD: %v, %d ClusterNetworkPolicies, %d namespaces; want no error, none, 1", err, len(s.ClusterNetworkPolicies), len(s.Namespaces))
	}

	broken := cnpfake.NewSimpleClientset()
	broken.PrependReactor("list", "clusternetworkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "policy.networking.k8s.io", Resource: "clusternetworkpolicies"}, "", nil)
	})
	if _, _, err := Snapshot(t.Context(), kube, broken); err == nil {
		t.Error("a forbidden list of ClusterNetworkPolicies was not an error; explain would leave the admin tier out silently")
	}
}
