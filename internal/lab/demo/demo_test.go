package demo

import (
	"path"
	"testing"

	"github.com/kube-fence/kube-fence/internal/lab/scenario"
)

// The embedded files must stay valid: the demo has no other input.
func TestEmbeddedFilesParse(t *testing.T) {
	snap, err := loadScenario()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pods) != 9 || len(snap.Namespaces) != 3 {
		t.Errorf("scenario has %d pods in %d namespaces, want the 3x3 model", len(snap.Pods), len(snap.Namespaces))
	}
	for _, p := range snap.Pods {
		if len(p.Ports) != 4 || len(p.IPs) != 2 {
			t.Errorf("pod %s: %d ports, %d addresses; want 4 and dual-stack", p.Key(), len(p.Ports), len(p.IPs))
		}
	}
	entries, err := files.ReadDir("policies")
	if err != nil || len(entries) != 3 {
		t.Fatalf("policies: %d files, %v", len(entries), err)
	}
	for _, e := range entries {
		data, err := files.ReadFile(path.Join("policies", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := scenario.Parse(data)
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if len(s.Policies) != 1 || len(s.Pods)+len(s.Namespaces)+len(s.Nodes) != 0 {
			t.Errorf("%s must hold exactly one NetworkPolicy", e.Name())
		}
	}
}
