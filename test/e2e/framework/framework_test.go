package framework

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

func TestPKIChainsAndUsages(t *testing.T) {
	p, err := NewPKI(t.TempDir(), net.ParseIP("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.CAPEM) {
		t.Fatal("CA PEM does not parse")
	}
	serving := loadPair(t, p.ServingCert, p.ServingKey)
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("serving certificate does not verify for 127.0.0.1: %v", err)
	}
	admin := loadPair(t, p.AdminCert, p.AdminKey)
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate does not verify as a client: %v", err)
	}
	if admin.Subject.CommonName != AdminUser || !slices.Equal(admin.Subject.Organization, []string{AdminGroup}) {
		t.Errorf("admin subject = %v, want CN=%s O=%s", admin.Subject, AdminUser, AdminGroup)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("admin client certificate also verifies as a server certificate")
	}
	for _, f := range []string{p.SAKey, p.SAPub, p.CAKey} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
}

func loadPair(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load %s: %v", certFile, err)
	}
	return pair.Leaf
}

func TestLastLines(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb"},
		{"only", 1, "only"},
	}
	for _, c := range cases {
		if got := string(lastLines([]byte(c.in), c.n)); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestRBACManifestIsLeastPrivilege pins deploy/rbac.yaml to exactly the rules
// the agent needs; the e2e smoke test proves them against a real API server.
func TestRBACManifestIsLeastPrivilege(t *testing.T) {
	objs, err := DecodeManifest(RepoPath(t, RBACManifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("%s has %d objects, want ServiceAccount, ClusterRole, ClusterRoleBinding", RBACManifest, len(objs))
	}
	sa, ok := objs[0].(*corev1.ServiceAccount)
	if !ok || sa.Namespace != AgentServiceAccountNamespace || sa.Name != AgentServiceAccount {
		t.Errorf("first object = %T %v, want ServiceAccount %s/%s", objs[0], objs[0], AgentServiceAccountNamespace, AgentServiceAccount)
	}
	role, ok := objs[1].(*rbacv1.ClusterRole)
	if !ok {
		t.Fatalf("second object = %T, want ClusterRole", objs[1])
	}
	read := []string{"get", "list", "watch"}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: read},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
		{APIGroups: []string{"policy.networking.k8s.io"}, Resources: []string{"clusternetworkpolicies"}, Verbs: read},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("ClusterRole %s rules =\n%+v\nwant\n%+v", role.Name, role.Rules, want)
	}
	binding, ok := objs[2].(*rbacv1.ClusterRoleBinding)
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: AgentServiceAccount, Namespace: AgentServiceAccountNamespace}
	if !ok || binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != role.Name ||
		!slices.Equal(binding.Subjects, []rbacv1.Subject{wantSubject}) {
		t.Errorf("third object = %T %+v, want a ClusterRoleBinding of %s to %v", objs[2], objs[2], role.Name, wantSubject)
	}
}

func TestDecodeManifestNamesBadDocument(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	doc := "# only a comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\napiVersion: v1\nkind: NoSuchKind\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := DecodeManifest(path)
	if err == nil || !strings.Contains(err.Error(), "document 3") {
		t.Errorf("DecodeManifest of an unknown kind in document 3 = %v, want an error naming document 3", err)
	}
}

// fatalRecorder captures the message of a Fatal call and ends the goroutine
// as testing does, so the missing-binary paths can be tested.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func fatalMessage(t *testing.T, f func(testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestMissingBinariesFailWithInstructions(t *testing.T) {
	t.Setenv(EnvAPIServer, filepath.Join(t.TempDir(), "kube-apiserver"))
	if msg := fatalMessage(t, func(tb testing.TB) { APIServerBinary(tb) }); !strings.Contains(msg, "hack/build-kube-apiserver.sh") {
		t.Errorf("missing kube-apiserver: message %q does not name hack/build-kube-apiserver.sh", msg)
	}
	t.Setenv("PATH", t.TempDir())
	if msg := fatalMessage(t, func(tb testing.TB) { EtcdBinary(tb) }); !strings.Contains(msg, "etcd-server") {
		t.Errorf("missing etcd: message %q does not name the etcd-server package", msg)
	}
}

func TestCheckStaticRefusesDynamicExecutables(t *testing.T) {
	// /bin/sh on Debian is dynamically linked against libc.
	err := CheckStatic("/bin/sh")
	if err == nil || !strings.Contains(err.Error(), "PT_INTERP") {
		t.Errorf("CheckStatic(/bin/sh) = %v, want an error naming the program interpreter", err)
	}
	if err := CheckStatic(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("CheckStatic of a missing file = nil, want an error")
	}
}

func TestConfinementWrapsWithOnlyTheAddedCapabilities(t *testing.T) {
	no, yes := false, true
	c := &corev1.Container{Name: "agent", SecurityContext: &corev1.SecurityContext{
		Privileged: &no, AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}},
	}}
	conf, err := ConfinementOf(c)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(conf.Wrap([]string{"/kube-fence", "agent"}), " ")
	for _, want := range []string{"unshare --pid --fork", "--mount-proc", "remount,bind,ro /", "--bounding-set=-all,+net_admin",
		"--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "-- /kube-fence agent"} {
		if !strings.Contains(got, want) {
			t.Errorf("Wrap = %q, missing %q", got, want)
		}
	}
	c.SecurityContext.Capabilities.Drop = nil
	if _, err := ConfinementOf(c); err == nil {
		t.Error("ConfinementOf a container that keeps the runtime's default capabilities = nil error")
	}
	c.SecurityContext.Capabilities.Drop, c.SecurityContext.Privileged = []corev1.Capability{"ALL"}, &yes
	if _, err := ConfinementOf(c); err == nil {
		t.Error("ConfinementOf a privileged container = nil error")
	}
}

func TestParseMetricsAndExpandVars(t *testing.T) {
	text := "# HELP a_total A.\n# TYPE a_total counter\na_total{cause=\"x\"} 3\nb 1.5e+09\n\n"
	samples, types := ParseMetrics(text)
	if v, ok := Value(samples, "a_total", `cause="x"`); !ok || v != 3 {
		t.Errorf("a_total{cause=x} = %v %v, want 3", v, ok)
	}
	if v, ok := Value(samples, "b", ""); !ok || v != 1.5e9 {
		t.Errorf("b = %v %v, want 1.5e9", v, ok)
	}
	if types["a_total"] != "counter" {
		t.Errorf("type of a_total = %q, want counter", types["a_total"])
	}
	env := map[string]string{"NODE_NAME": "n1"}
	if got := expandVars("--node-name=$(NODE_NAME) $(UNSET)", env); got != "--node-name=n1 $(UNSET)" {
		t.Errorf("expandVars = %q", got)
	}
}
