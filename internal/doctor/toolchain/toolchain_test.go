package toolchain

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestParseVersion(t *testing.T) {
	cases := []struct{ out, version, backend string }{
		{"iptables v1.8.9 (nf_tables)\n", "1.8.9", "nf_tables"},
		{"iptables v1.8.7 (legacy)\n", "1.8.7", "legacy"},
		{"ip6tables v1.8.11 (nf_tables)", "1.8.11", "nf_tables"},
		{"iptables v1.6.1\n", "1.6.1", "legacy"},
		{"garbage", "", ""},
	}
	for _, c := range cases {
		v, b := ParseVersion(c.out)
		if v != c.version || b != c.backend {
			t.Errorf("%q: %q %q, want %q %q", c.out, v, b, c.version, c.backend)
		}
	}
}

// fakeBinary writes an executable whose --version output is version.
func fakeBinary(t *testing.T, path, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho '"+version+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindBinariesUnderARoot(t *testing.T) {
	root := t.TempDir()
	fakeBinary(t, filepath.Join(root, "usr/sbin/iptables"), "iptables v1.8.9 (nf_tables)")
	fakeBinary(t, filepath.Join(root, "usr/sbin/iptables-legacy"), "iptables v1.8.9 (legacy)")
	fakeBinary(t, filepath.Join(root, "var/lib/rancher/k3s/data/abc123/bin/aux/iptables"), "iptables v1.8.8 (nf_tables)")
	fakeBinary(t, filepath.Join(root, "var/lib/rancher/k3s/data/abc123/bin/aux/ip6tables"), "ip6tables v1.8.8 (nf_tables)")
	got := FindBinaries(context.Background(), Options{Root: root, Path: []string{"/usr/sbin", "/nonexistent"}})
	want := map[string]Binary{
		filepath.Join(root, "usr/sbin/iptables"):                                 {Source: "PATH", Version: "1.8.9", Backend: "nf_tables"},
		filepath.Join(root, "usr/sbin/iptables-legacy"):                          {Source: "PATH", Version: "1.8.9", Backend: "legacy"},
		filepath.Join(root, "var/lib/rancher/k3s/data/abc123/bin/aux/iptables"):  {Source: "k3s", Version: "1.8.8", Backend: "nf_tables"},
		filepath.Join(root, "var/lib/rancher/k3s/data/abc123/bin/aux/ip6tables"): {Source: "k3s", Version: "1.8.8", Backend: "nf_tables"},
	}
	if len(got) != len(want) {
		t.Fatalf("found %d binaries, want %d: %+v", len(got), len(want), got)
	}
	for _, b := range got {
		w, ok := want[b.Path]
		if !ok || b.Source != w.Source || b.Version != w.Version || b.Backend != w.Backend {
			t.Errorf("%+v, want %+v", b, w)
		}
	}
}

func TestFindBinariesEmptyK3sGlob(t *testing.T) {
	if got := FindBinaries(context.Background(), Options{Root: t.TempDir(), Path: []string{}}); len(got) != 0 {
		t.Errorf("empty root: %+v", got)
	}
}

func TestKubeRouterNames(t *testing.T) {
	for _, c := range []string{"KUBE-ROUTER-FORWARD", "KUBE-NWPLCY-ABC", "KUBE-POD-FW-XYZ"} {
		if !KubeRouterChain(c) {
			t.Errorf("%s is kube-router's", c)
		}
	}
	if KubeRouterChain("KUBE-SERVICES") || KubeRouterIPSet("cali40all-hosts") {
		t.Error("kube-proxy's and Calico's names are not kube-router's")
	}
	if !KubeRouterIPSet("KUBE-SRC-ABCDEF") || !KubeRouterIPSet("KUBE-DST-ABCDEF") || !KubeRouterIPSet("inet6:KUBE-SRC-ABCDEF") {
		t.Error("kube-router ipsets")
	}
}
