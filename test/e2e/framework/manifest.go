package framework

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// AgentServiceAccount is the ServiceAccount deploy/rbac.yaml binds to the
// kube-fence ClusterRole; the agent under test authenticates as it.
const (
	AgentServiceAccountNamespace = "kube-system"
	AgentServiceAccount          = "kube-fence"
	RBACManifest                 = "deploy/rbac.yaml"
)

// DecodeManifest decodes a multi-document YAML file into typed objects of
// client-go's scheme, in file order, skipping empty documents.
func DecodeManifest(path string) ([]runtime.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	decoder := scheme.Codecs.UniversalDeserializer()
	var objs []runtime.Object
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if gvk.Kind == "" {
			return nil, fmt.Errorf("%s: document %d has no kind", path, i)
		}
		objs = append(objs, obj)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// ApplyManifest creates the objects of a manifest, or replaces them when they
// exist. It knows the kinds deploy/ uses (access control, namespaces, the
// DaemonSet); any other kind is an error naming it. Unknown fields are
// refused by the API server (strict field validation).
func ApplyManifest(ctx context.Context, cs kubernetes.Interface, path string) error {
	objs, err := DecodeManifest(path)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if err := applyObject(ctx, cs, obj); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// applyObject creates obj, or updates it on AlreadyExists. Only a handful of
// kinds are needed, so a typed switch beats a dynamic client and REST mapper.
func applyObject(ctx context.Context, cs kubernetes.Interface, obj runtime.Object) error {
	create := metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}
	update := metav1.UpdateOptions{FieldValidation: metav1.FieldValidationStrict}
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		c := cs.CoreV1().Namespaces()
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	case *corev1.ServiceAccount:
		c := cs.CoreV1().ServiceAccounts(o.Namespace)
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	case *rbacv1.ClusterRole:
		c := cs.RbacV1().ClusterRoles()
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	case *rbacv1.ClusterRoleBinding:
		c := cs.RbacV1().ClusterRoleBindings()
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	case *rbacv1.Role:
		c := cs.RbacV1().Roles(o.Namespace)
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	case *rbacv1.RoleBinding:
		c := cs.RbacV1().RoleBindings(o.Namespace)
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	case *appsv1.DaemonSet:
		c := cs.AppsV1().DaemonSets(o.Namespace)
		if _, err = c.Create(ctx, o, create); apierrors.IsAlreadyExists(err) {
			_, err = c.Update(ctx, o, update)
		}
	default:
		return fmt.Errorf("apply %T: kind not supported by the e2e framework", obj)
	}
	if err != nil {
		name := "?"
		if m, merr := meta.Accessor(obj); merr == nil {
			name = m.GetNamespace() + "/" + m.GetName()
		}
		return fmt.Errorf("apply %T %s: %w", obj, name, err)
	}
	return nil
}

// AgentKubeconfig applies deploy/rbac.yaml and returns a kubeconfig that
// authenticates as its ServiceAccount with a TokenRequest token, for the
// agent process: it then runs with exactly the role the project ships. It
// returns once the role is in effect (RBAC reaches the authorizer through an
// informer, a moment after the write).
func (cp *ControlPlane) AgentKubeconfig(t testing.TB) string {
	t.Helper()
	if err := ApplyManifest(t.Context(), cp.Admin, RepoPath(t, RBACManifest)); err != nil {
		t.Fatalf("apply RBAC: %v", err)
	}
	path := cp.ServiceAccountKubeconfig(t, AgentServiceAccountNamespace, AgentServiceAccount)
	agent, _ := cp.ClientForKubeconfig(t, path)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		_, err := agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return path
		}
		if !apierrors.IsForbidden(err) || ctx.Err() != nil {
			t.Fatalf("ServiceAccount %s/%s cannot list pods with %s applied: %v",
				AgentServiceAccountNamespace, AgentServiceAccount, RBACManifest, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
