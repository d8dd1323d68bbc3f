package framework

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// The ClusterNetworkPolicy CRD of network-policy-api v0.3.0, vendored in
// deploy/crds/ (see its README.md), one manifest per release channel.
const (
	CNPCRDStandard     = "deploy/crds/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml"
	CNPCRDExperimental = "deploy/crds/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"
	CNPCRDName         = "clusternetworkpolicies.policy.networking.k8s.io"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRD creates the CustomResourceDefinition of a one-document
// manifest, or replaces it when it exists (through the dynamic client: the
// framework needs no typed apiextensions client for this), and waits until
// the API server reports it Established, that is, serving its resource.
func (cp *ControlPlane) InstallCRD(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(RepoPath(t, path))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.GetKind() != "CustomResourceDefinition" {
		t.Fatalf("%s: kind %q, want one CustomResourceDefinition", path, obj.GetKind())
	}
	crds := cp.dynamic(t).Resource(crdResource)
	_, err = crds.Create(t.Context(), obj, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if apierrors.IsAlreadyExists(err) {
		var cur *unstructured.Unstructured
		if cur, err = crds.Get(t.Context(), obj.GetName(), metav1.GetOptions{}); err == nil {
			obj.SetResourceVersion(cur.GetResourceVersion())
			_, err = crds.Update(t.Context(), obj, metav1.UpdateOptions{FieldValidation: metav1.FieldValidationStrict})
		}
	}
	if err != nil {
		t.Fatalf("install CRD %s from %s: %v", obj.GetName(), path, err)
	}
	WaitFor(t, 30*time.Second, "CRD "+obj.GetName()+" established", func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %v", conds)
	})
}

// DeleteCRD deletes a CustomResourceDefinition, and with it every object of
// its resource, and waits until it is gone.
func (cp *ControlPlane) DeleteCRD(t testing.TB, name string) {
	t.Helper()
	crds := cp.dynamic(t).Resource(crdResource)
	if err := crds.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete CRD %s: %v", name, err)
	}
	WaitFor(t, 60*time.Second, "CRD "+name+" deleted", func(ctx context.Context) (bool, error) {
		_, err := crds.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

func (cp *ControlPlane) dynamic(t testing.TB) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(cp.AdminConfig)
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	return d
}
