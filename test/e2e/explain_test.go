package e2e

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-fence/kube-fence/internal/explain"
	"github.com/kube-fence/kube-fence/test/e2e/framework"
)

// TestExplainLiveCluster runs `kube-fence explain --kubeconfig` against a
// real API server: it reads the objects (and changes none) and answers with
// the policies and rules that decide.
func TestExplainLiveCluster(t *testing.T) {
	cp := framework.Start(t)
	bin := framework.KubeFenceBinary(t)
	cp.CreateNode(t, "n1", []string{"10.42.0.0/24", "fd00:42::/64"}, "10.0.0.1", "fd00::1")
	cp.CreateNamespace(t, "x", map[string]string{"team": "x"})
	cp.CreateNamespace(t, "y", nil)
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	for _, p := range []struct {
		ns, name string
		ips      []string
	}{{"x", "a", []string{"10.42.0.2", "fd00:42::2"}}, {"y", "b", []string{"10.42.0.3", "fd00:42::3"}}} {
		cp.CreatePod(t, framework.Pod(p.ns, p.name, "n1", map[string]string{"pod": p.name}, http))
		cp.SetPodRunning(t, p.ns, p.name, p.ips...)
	}
	np := netpol("y", "allow-x-http", map[string]string{"pod": "b"}, ingress)
	np.Spec.Ingress = append(np.Spec.Ingress, from(peers(nsPeer(map[string]string{"team": "x"})), namedPort("http")))
	if _, err := cp.Admin.NetworkingV1().NetworkPolicies("y").Create(t.Context(), np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := resourceVersions(t, cp)

	explainJSON := func(args ...string) explain.Report {
		t.Helper()
		argv := append([]string{"explain", "--kubeconfig", cp.AdminKubeconfig, "-o", "json"}, args...)
		out, err := cp.NS.Command(bin, argv...)
		if err != nil {
			t.Fatalf("kube-fence %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		var r explain.Report
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("explain -o json printed no report: %v\n%s", err, out)
		}
		return r
	}

	r := explainJSON("--from", "x/a", "--to", "y/b", "--port", "8080")
	if len(r.Verdicts) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 verdict, got %+v", r.Verdicts)
	}
	for _, v := range r.Verdicts {
		if !v.Allowed || strings.Join(v.Ingress.AllowedBy, ",") != "y/allow-x-http ingress[0]" {
			t.Errorf("%s: want allowed by y/allow-x-http ingress[0], got %+v", v.Family, v)
		}
	}
	r = explainJSON("--from", "10.42.0.2", "--to", "y/b", "--port", "80")
	if len(r.Verdicts) != 1 || r.Verdicts[0].Allowed || r.Verdicts[0].From != "x/a" {
		t.Fatalf("want one denied IPv4 verdict from x/a, got %+v", r.Verdicts)
	}
	if m := r.Verdicts[0].Ingress.NearestMiss; m == nil || !m.PeerMatched || m.PortMatched {
		t.Errorf("want the nearest miss to match the peer and not the port, got %+v", m)
	}

	out, err := cp.NS.Command(bin, "explain", "--kubeconfig", cp.AdminKubeconfig, "--from", "x/nope", "--to", "y/b", "--port", "80")
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "--from x/nope: no such pod") {
		t.Errorf("an unknown pod: want exit 2 naming it, got %d: %s", code, out)
	}
	if after := resourceVersions(t, cp); after != before {
		t.Errorf("explain changed the cluster: resource versions %s, then %s", before, after)
	}
}

// resourceVersions sums up the versions of the objects explain reads.
func resourceVersions(t *testing.T, cp *framework.ControlPlane) string {
	t.Helper()
	ctx := t.Context()
	pods, err := cp.Admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nps, err := cp.Admin.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range pods.Items {
		b.WriteString(p.Name + "@" + p.ResourceVersion + " ")
	}
	for _, np := range nps.Items {
		b.WriteString(np.Name + "@" + np.ResourceVersion + " ")
	}
	return b.String()
}

// exitCode is a finished command's exit status: 0 without error, -1 when it
// did not run to an exit.
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
