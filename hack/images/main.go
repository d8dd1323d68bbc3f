// Command images builds the container images hack/node.sh imports into the
// node's containerd, without a registry or a container builder: each is a
// docker-archive tarball (what `ctr images import` reads) written with
// go-containerregistry from files on this machine.
//
//	images -kind kube-fence -ref ghcr.io/kube-fence/kube-fence:v0.1.0 -bin _output/bin/kube-fence -o kube-fence.tar
//	images -kind pause      -ref registry.k8s.io/pause:3.10.2 -bin _output/images/pause -o pause.tar
//	images -kind agnhost    -ref registry.k8s.io/e2e-test-images/agnhost:2.66.1 -bin _output/bin/agnhost -o agnhost.tar
//	images -kind kube-router -ref kube-fence.local/kube-router:v2.10.0 -bin _output/bin/kube-router-v2.10.0 -root DEBIAN-FILES -o kube-router.tar
//
// kube-fence is deploy/Dockerfile's image: a base layer standing in for
// gcr.io/distroless/static-debian12 (CA certificates, /etc/passwd and
// /etc/group, time zones, /tmp; no shell, no libc) and a layer with the
// static binary at /kube-fence, run as 0:0 with `/kube-fence agent`.
// pause is the same base with a static pause binary as its entrypoint.
// agnhost has upstream's entrypoint, command, files and user but not its
// Alpine tools: the network policy tests run only /agnhost. kube-router is
// the same base, a layer of Debian 12's iptables 1.8.9, ipset and glibc
// (the packages' files unpacked into -root; hack/node/seed.sh) and the
// binary at /usr/local/bin/kube-router: the seed's controller, side by side.
// Any kind takes -root: the network-policy-api conformance suite runs its
// agnhost through /bin/bash, so its agnhost carries Debian's bash
// (hack/e2e-npapi.sh).
//
// It is a module of its own so that its one dependency stays out of the
// project's go.mod: the agent never links it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	kind := flag.String("kind", "", "kube-fence, pause, agnhost or kube-router")
	ref := flag.String("ref", "", "the image reference to tag it with, as the pod specs name it")
	bin := flag.String("bin", "", "the static binary to put in it")
	root := flag.String("root", "", "a directory of files to put in it as they are (unpacked Debian packages); kube-router needs one")
	out := flag.String("o", "", "the docker-archive tarball to write")
	flag.Parse()
	if err := run(*kind, *ref, *bin, *root, *out); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func run(kind, ref, bin, root, out string) error {
	if ref == "" || bin == "" || out == "" {
		return fmt.Errorf("-ref, -bin and -o are required")
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", ref, err)
	}
	spec, ok := specs[kind]
	if !ok {
		return fmt.Errorf("-kind %q: want kube-fence, pause, agnhost or kube-router", kind)
	}
	if spec.needsRoot && root == "" {
		return fmt.Errorf("-kind %s needs -root: the files of the Debian packages it runs", kind)
	}
	img, err := build(spec, bin, root)
	if err != nil {
		return fmt.Errorf("build %s image: %w", kind, err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}
