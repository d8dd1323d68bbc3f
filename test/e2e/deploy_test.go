package e2e

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/kube-fence/kube-fence/internal/agent"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// TestDaemonSetManifest pins the properties deploy/daemonset.yaml promises
// (docs/operations.md explains each): host network, only CAP_NET_ADMIN, not
// privileged, read-only root, every taint tolerated, node-critical priority,
// the node name from the downward API, probes that reach the loopback health
// server, resources. TestAgent runs the agent with exactly these arguments,
// environment and confinement, and applies the objects to an API server.
func TestDaemonSetManifest(t *testing.T) {
	ds := framework.AgentDaemonSet(t)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	check := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Errorf(framework.DaemonSetManifest+": "+format, args...)
		}
	}
	check(ds.Namespace == framework.AgentServiceAccountNamespace, "namespace %q, want %q", ds.Namespace, framework.AgentServiceAccountNamespace)
	check(pod.ServiceAccountName == framework.AgentServiceAccount, "serviceAccountName %q, want %q (deploy/rbac.yaml)", pod.ServiceAccountName, framework.AgentServiceAccount)
	check(pod.HostNetwork, "hostNetwork is false: the table must live in the node's network namespace")
	check(!pod.HostPID && !pod.HostIPC, "hostPID or hostIPC set; the agent needs neither")
	check(len(pod.Volumes) == 0, "volumes %v: the agent mounts nothing from the host", pod.Volumes)
	check(pod.PriorityClassName == "system-node-critical", "priorityClassName %q, want system-node-critical", pod.PriorityClassName)
	check(slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}), "tolerations %+v do not tolerate every taint (operator Exists, no key, no effect)", pod.Tolerations)
	check(ds.Spec.Selector != nil && ds.Spec.Template.Labels[labelName] == ds.Spec.Selector.MatchLabels[labelName],
		"selector %v does not match the template's labels %v", ds.Spec.Selector, ds.Spec.Template.Labels)

	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("%s: container %s has no securityContext.capabilities", framework.DaemonSetManifest, c.Name)
	}
	check(sc.Privileged != nil && !*sc.Privileged, "privileged not false")
	check(sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation not false")
	check(sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem not true")
	check(slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}), "capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	check(slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}), "capabilities.add %v, want [NET_ADMIN] only", sc.Capabilities.Add)
	check(sc.RunAsUser != nil && *sc.RunAsUser == 0, "runAsUser not 0: a non-root user gets no capabilities without ambient ones, which Kubernetes cannot grant")
	check(sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, "seccompProfile not RuntimeDefault")

	check(slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}), "no NODE_NAME from the downward API's spec.nodeName (the default of --node-name)")
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		_, ok := c.Resources.Requests[r]
		check(ok, "no %s request", r)
	}
	_, ok := c.Resources.Limits[corev1.ResourceMemory]
	check(ok, "no memory limit")

	_, healthPort, err := net.SplitHostPort(agent.DefaultHealthAddr)
	if err != nil {
		t.Fatal(err)
	}
	for name, probe := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("%s: no httpGet probe for %s", framework.DaemonSetManifest, name)
			continue
		}
		g := probe.HTTPGet
		// hostNetwork: the kubelet dials the pod IP, which is the node's
		// address, unless host says loopback, where the server listens.
		check(g.Path == name && g.Host == "127.0.0.1" && g.Port == intstr.Parse(healthPort),
			"probe %s = host %q path %q port %s, want host 127.0.0.1 port %s (--health-bind-address default %s)",
			name, g.Host, g.Path, g.Port.String(), healthPort, agent.DefaultHealthAddr)
	}
	check(slices.Equal(c.Command, []string{"/kube-fence"}), "command %q, want [/kube-fence] (where deploy/Dockerfile puts the binary)", c.Command)
	checkImageFiles(t, c.Image)
}

const labelName = "app.kubernetes.io/name"

// checkImageFiles ties the manifest to deploy/Dockerfile and
// deploy/kustomization.yaml: the image is the one kustomize sets, and the
// Dockerfile builds with the script the tests build with and puts the binary
// where the manifest runs it, on a base without libc.
func checkImageFiles(t *testing.T, image string) {
	docker, err := os.ReadFile(framework.RepoPath(t, "deploy/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{framework.BuildScript, "COPY --from=build /out/kube-fence /kube-fence", "FROM gcr.io/distroless/static"} {
		if !strings.Contains(string(docker), want) {
			t.Errorf("deploy/Dockerfile does not contain %q", want)
		}
	}
	data, err := os.ReadFile(framework.RepoPath(t, "deploy/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		metav1.TypeMeta `json:",inline"`
		Resources       []string `json:"resources"`
		Images          []struct {
			Name   string `json:"name"`
			NewTag string `json:"newTag"`
		} `json:"images"`
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("deploy/kustomization.yaml: %v", err)
	}
	if !slices.Equal(k.Resources, []string{"rbac.yaml", "daemonset.yaml"}) {
		t.Errorf("deploy/kustomization.yaml resources = %v, want [rbac.yaml daemonset.yaml]", k.Resources)
	}
	if len(k.Images) != 1 || image != k.Images[0].Name+":"+k.Images[0].NewTag {
		t.Errorf("deploy/kustomization.yaml images %+v do not set the manifest's image %s", k.Images, image)
	}
}
