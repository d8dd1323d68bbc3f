package framework

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVendoredCRDs: deploy/crds/ holds network-policy-api's CRD manifests
// exactly as the module go.mod pins ships them, with the SHA-256 sums its
// README.md lists, so the CRD users install is the schema kube-fence's
// types were built from.
func TestVendoredCRDs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", "sigs.k8s.io/network-policy-api").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/network-policy-api (needs the module downloaded: go mod download): %v", err)
	}
	version, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if dir == "" {
		t.Fatalf("go list -m sigs.k8s.io/network-policy-api: no module directory in %q; run go mod download", out)
	}
	readme, err := os.ReadFile(RepoPath(t, "deploy/crds/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "**"+version+"**") {
		t.Errorf("deploy/crds/README.md does not name the pinned version %s", version)
	}
	for _, channel := range []string{"standard", "experimental"} {
		rel := filepath.Join("deploy/crds", channel, "policy.networking.k8s.io_clusternetworkpolicies.yaml")
		have, err := os.ReadFile(RepoPath(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, "config/crd", channel, "policy.networking.k8s.io_clusternetworkpolicies.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s differs from network-policy-api %s's config/crd/%s", rel, version, channel)
		}
		sum := sha256.Sum256(have)
		if !strings.Contains(string(readme), "`"+hex.EncodeToString(sum[:])+"`") {
			t.Errorf("deploy/crds/README.md does not list %s's SHA-256 %x", rel, sum)
		}
		if !bytes.Contains(have, []byte("policy.networking.k8s.io/channel: "+channel)) {
			t.Errorf("%s is not the %s channel's manifest", rel, channel)
		}
	}
	license, err := os.ReadFile(RepoPath(t, "deploy/crds/LICENSE"))
	if err != nil || !bytes.Contains(license, []byte("Apache License")) {
		t.Errorf("deploy/crds/LICENSE: want network-policy-api's Apache License beside its manifests (%v)", err)
	}
}
