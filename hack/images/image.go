package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// spec says what goes into one kind of image besides the base layer.
type spec struct {
	binPath    string // where the binary lands in the image
	links      map[string]string
	dirs       []string
	extraUsers string // appended to /etc/passwd
	extraGroup string // appended to /etc/group
	// needsRoot: the image cannot work without a directory tree given with
	// -root (unpacked Debian packages), which goes in a layer between the
	// base and the binary. Any kind takes one.
	needsRoot bool
	config    v1.Config
}

var specs = map[string]spec{
	// deploy/Dockerfile: ENTRYPOINT ["/kube-fence"], CMD ["agent"], USER 0:0.
	"kube-fence": {
		binPath: "kube-fence",
		config: v1.Config{
			Entrypoint: []string{"/kube-fence"},
			Cmd:        []string{"agent"},
			User:       "0:0",
		},
	},
	"pause": {
		binPath: "pause",
		config:  v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
	},
	// test/images/agnhost/Dockerfile at the pinned release, minus Alpine's
	// packages, coredns and the fake registry's data.
	"agnhost": {
		binPath:    "agnhost",
		links:      map[string]string{"agnhost-2": "agnhost"},
		dirs:       []string{"uploads"},
		extraUsers: "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/sbin/nologin\n",
		extraGroup: "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n",
		config: v1.Config{
			Entrypoint:   []string{"/agnhost"},
			Cmd:          []string{"pause"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}},
		},
	},
	// kube-router's network policy controller as K3s runs it: it execs
	// iptables, ip6tables, their -save and -restore, and ipset, so the image
	// holds Debian 12's iptables 1.8.9 (nf_tables), ipset and their
	// libraries and glibc (-root). Debian points the iptables names at the
	// nf_tables variant through update-alternatives at install time; here the
	// links do it.
	"kube-router": {
		binPath:   "usr/local/bin/kube-router",
		needsRoot: true,
		links: map[string]string{
			"usr/sbin/iptables":          "iptables-nft",
			"usr/sbin/iptables-save":     "iptables-nft-save",
			"usr/sbin/iptables-restore":  "iptables-nft-restore",
			"usr/sbin/ip6tables":         "ip6tables-nft",
			"usr/sbin/ip6tables-save":    "ip6tables-nft-save",
			"usr/sbin/ip6tables-restore": "ip6tables-nft-restore",
		},
		config: v1.Config{Entrypoint: []string{"/usr/local/bin/kube-router"}, User: "0:0"},
	},
}

// distroless/static's users and groups.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"
	// Where Debian's ca-certificates and tzdata put what distroless copies.
	caBundle = "/etc/ssl/certs/ca-certificates.crt"
	zoneinfo = "/usr/share/zoneinfo"
)

func build(s spec, bin, root string) (v1.Image, error) {
	base, err := baseLayer(s)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	layers := []v1.Layer{base}
	if root != "" {
		w := newTarWriter()
		if err := w.tree(root, ""); err != nil {
			return nil, fmt.Errorf("layer with %s: %w", root, err)
		}
		l, err := w.layer()
		if err != nil {
			return nil, fmt.Errorf("layer with %s: %w", root, err)
		}
		layers = append(layers, l)
	}
	app, err := appLayer(s, bin)
	if err != nil {
		return nil, fmt.Errorf("layer with %s: %w", bin, err)
	}
	img, err := mutate.AppendLayers(empty.Image, append(layers, app)...)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config = s.config
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + caBundle}
	return mutate.ConfigFile(img, cfg)
}

// baseLayer is what the image has before its binary: distroless/static's
// files, taken from this Debian machine.
func baseLayer(s spec) (v1.Layer, error) {
	w := newTarWriter()
	for _, d := range []string{"etc", "etc/ssl", "etc/ssl/certs", "home", "home/nonroot", "root", "usr", "usr/share", "var"} {
		w.dir(d, 0o755)
	}
	w.dir("tmp", 0o1777|fs.ModeSticky)
	w.file("etc/passwd", []byte(passwd+s.extraUsers), 0o644)
	w.file("etc/group", []byte(group+s.extraGroup), 0o644)
	w.file("etc/nsswitch.conf", []byte("hosts: files dns\n"), 0o644)
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("CA certificates (Debian package ca-certificates): %w", err)
	}
	w.file(caBundle[1:], ca, 0o644)
	if err := w.tree(zoneinfo, zoneinfo[1:]); err != nil {
		return nil, fmt.Errorf("time zones (Debian package tzdata): %w", err)
	}
	return w.layer()
}

func appLayer(s spec, bin string) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	w := newTarWriter()
	w.file(s.binPath, data, 0o755)
	for link, target := range s.links {
		w.symlink(link, target)
	}
	for _, d := range s.dirs {
		w.dir(d, 0o755)
	}
	return w.layer()
}

// tarWriter writes a reproducible layer: owner root, one fixed time.
type tarWriter struct {
	buf bytes.Buffer
	tw  *tar.Writer
	err error
}

var epoch = time.Unix(0, 0)

func newTarWriter() *tarWriter {
	w := &tarWriter{}
	w.tw = tar.NewWriter(&w.buf)
	return w
}

func (w *tarWriter) header(h *tar.Header, data []byte) {
	if w.err != nil {
		return
	}
	h.ModTime, h.Format = epoch, tar.FormatPAX
	if w.err = w.tw.WriteHeader(h); w.err == nil && data != nil {
		_, w.err = w.tw.Write(data)
	}
}

func (w *tarWriter) dir(name string, mode fs.FileMode) {
	m := int64(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	w.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: m}, nil)
}

func (w *tarWriter) file(name string, data []byte, mode int64) {
	w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data)
}

func (w *tarWriter) symlink(name, target string) {
	w.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

// tree copies the directory src of this machine to dst in the layer (""
// for the image's root), keeping each file's permission bits.
func (w *tarWriter) tree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		name := filepath.Join(dst, rel)
		switch {
		case name == ".":
			// The image's root is not an entry of its layers.
		case d.IsDir():
			w.dir(name, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			w.symlink(name, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			w.file(name, data, int64(info.Mode().Perm()))
		}
		return w.err
	})
}

func (w *tarWriter) layer() (v1.Layer, error) {
	if w.err != nil {
		return nil, w.err
	}
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	data := w.buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}
