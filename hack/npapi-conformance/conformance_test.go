package conformance

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/yaml"

	api "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/network-policy-api/conformance"
	"sigs.k8s.io/network-policy-api/conformance/tests"
	"sigs.k8s.io/network-policy-api/conformance/utils/flags"
	k8s "sigs.k8s.io/network-policy-api/conformance/utils/kubernetes"
	"sigs.k8s.io/network-policy-api/conformance/utils/suite"
)

// TestNetworkPolicyAPIConformance is upstream's TestConformance (the
// standard suite, conformance_test.go of the pinned module) with two
// changes this kernel forces, both through the suite's own options:
//
//   - BaseManifests: upstream's base/manifests.yaml without the containers
//     that serve SCTP (`agnhost porter` with SERVE_SCTP_PORT_*). This
//     kernel has no SCTP sockets, so they exit at once, their pods never
//     become Ready and the suite's setup would wait out its 5 minutes and
//     fail every test. The suite reads a base from an https URL; it is
//     served from this process.
//   - SkipTests: the tests whose every probe is SCTP (ShortName ending in
//     SCTP). Subtests that mix SCTP probes with TCP and UDP ones still run
//     and fail at their first SCTP probe; the results table names them.
//
// Flags are upstream's (-supported-features, -exempt-features,
// -all-features, -debug, -cleanup-base-resources) and controller-runtime's
// -kubeconfig (or $KUBECONFIG).
func TestNetworkPolicyAPIConformance(t *testing.T) {
	cfg, err := config.GetConfig()
	if err != nil {
		t.Fatalf("load the kubeconfig (-kubeconfig or $KUBECONFIG): %v", err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := api.Install(c.Scheme()); err != nil {
		t.Fatalf("install the policy.networking.k8s.io scheme: %v", err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}

	raw, err := conformance.Manifests.ReadFile("base/manifests.yaml")
	if err != nil {
		t.Fatalf("the suite's base manifests: %v", err)
	}
	// The suite's default range for its host-network pods, given
	// explicitly so the base filled in here and the suite agree.
	const firstPort, lastPort = 34345, 34352
	var ports []int
	for p := firstPort; p <= lastPort; p++ {
		ports = append(ports, p)
	}
	base, dropped, err := withoutSCTP(raw, ports)
	if err != nil {
		t.Fatalf("base/manifests.yaml: %v", err)
	}
	t.Logf("base manifests: %d SCTP-serving containers left out (this kernel has no SCTP)", dropped)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(base) }))
	defer srv.Close()
	// The suite fetches https manifests with http.DefaultClient.
	http.DefaultClient = srv.Client()

	var skip []string
	for _, ct := range tests.ConformanceTests {
		if strings.HasSuffix(ct.ShortName, "SCTP") {
			skip = append(skip, ct.ShortName)
		}
	}
	t.Logf("skipped, every probe SCTP: %s", strings.Join(skip, ", "))

	s := suite.New(suite.Options{
		Client:                     c,
		ClientSet:                  clientset,
		KubeConfig:                 *cfg,
		Debug:                      *flags.ShowDebug,
		BaseManifests:              srv.URL + "/base/manifests.yaml",
		HostNetworkPortRangeStart:  firstPort,
		HostNetworkPortRangeEnd:    lastPort,
		CleanupBaseResources:       *flags.CleanupBaseResources,
		SupportedFeatures:          suite.ParseSupportedFeatures(*flags.SupportedFeatures),
		ExemptFeatures:             suite.ParseSupportedFeatures(*flags.ExemptFeatures),
		EnableAllSupportedFeatures: *flags.EnableAllSupportedFeatures,
		SkipTests:                  skip,
	})
	s.Setup(t)
	s.Run(t, tests.ConformanceTests)
}

// withoutSCTP returns the base manifests, their templates filled in with
// ports as the suite would, with every container that has a
// SERVE_SCTP_PORT_* variable removed, and how many there were.
func withoutSCTP(raw []byte, ports []int) ([]byte, int, error) {
	tmpl, err := template.New("base").Parse(string(raw))
	if err != nil {
		return nil, 0, err
	}
	var filled bytes.Buffer
	if err := tmpl.Execute(&filled, k8s.TemplateData{HostNetworkPorts: ports}); err != nil {
		return nil, 0, err
	}
	var out bytes.Buffer
	dropped := 0
	for _, doc := range strings.Split(filled.String(), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, 0, err
		}
		if obj == nil {
			continue
		}
		dropped += dropSCTPContainers(obj)
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, 0, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), dropped, nil
}

// dropSCTPContainers edits a StatefulSet's pod template in place.
func dropSCTPContainers(obj map[string]any) int {
	spec, _, _ := unstructured.NestedMap(obj, "spec", "template", "spec")
	containers, _ := spec["containers"].([]any)
	if containers == nil {
		return 0
	}
	var kept []any
	for _, c := range containers {
		if !servesSCTP(c) {
			kept = append(kept, c)
		}
	}
	spec["containers"] = kept
	_ = unstructured.SetNestedMap(obj, spec, "spec", "template", "spec")
	return len(containers) - len(kept)
}

func servesSCTP(container any) bool {
	c, _ := container.(map[string]any)
	env, _ := c["env"].([]any)
	for _, e := range env {
		if v, _ := e.(map[string]any); v != nil {
			if name, _ := v["name"].(string); strings.HasPrefix(name, "SERVE_SCTP_PORT_") {
				return true
			}
		}
	}
	return false
}

func TestWithoutSCTP(t *testing.T) {
	raw, err := conformance.Manifests.ReadFile("base/manifests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, dropped, err := withoutSCTP(raw, []int{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	// Two SCTP porters in each of the five StatefulSets.
	if dropped != 10 {
		t.Errorf("dropped %d containers, want 10", dropped)
	}
	for _, bad := range []string{"SERVE_SCTP_PORT", "{{"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("the edited base still holds %q", bad)
		}
	}
	for _, want := range []string{"serve-hostname --udp --http=false --port 53", "kind: Namespace", "--udp-port 3 "} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the edited base lost %q", want)
		}
	}
}
