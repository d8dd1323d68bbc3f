package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-fence/kube-fence/internal/netns"
	"github.com/kube-fence/kube-fence/internal/testenv"
)

// Fixed addresses: the namespace is the test's own, so nothing else can hold
// these ports, and fixed ports make the logs and kubeconfigs readable.
const (
	Host             = "127.0.0.1"
	EtcdClientPort   = 2379
	EtcdPeerPort     = 2380
	APIServerPort    = 6443
	ServiceCIDR      = "10.96.0.0/16"
	ServiceAccountNS = "kube-system"
)

// Timeouts for a start on a busy 2-core machine; a healthy start takes a few
// seconds.
const (
	etcdStartTimeout      = 60 * time.Second
	apiServerStartTimeout = 120 * time.Second
	stopGrace             = 30 * time.Second
	tailLines             = 60
)

// Options tune a control plane; the zero value is what most tests want.
type Options struct {
	// NS is the network namespace to run in; nil creates one that lives as
	// long as the test. Pass the namespace that plays the node when the agent
	// and lab pods must share it with the API server.
	NS *netns.NS
	// APIServerArgs are appended to the kube-apiserver command line, so a
	// test can override a default flag (the last occurrence wins).
	APIServerArgs []string
}

// ControlPlane is etcd plus kube-apiserver running inside NS.
type ControlPlane struct {
	NS     *netns.NS
	Dir    string // PKI, etcd data, kubeconfigs
	LogDir string // one log file per process
	PKI    *PKI

	URL             string // https://127.0.0.1:6443, reachable only inside NS
	EtcdURL         string
	AdminKubeconfig string       // client-certificate kubeconfig, for the agent or kubectl run inside NS
	AdminConfig     *rest.Config // dials through NS, for the test's own clients
	Admin           *kubernetes.Clientset

	apiserverArgv []string
	etcd          *Process
	apiserver     *Process
	tailed        map[string]bool // logs already shown by a failed start
}

// Start runs etcd and kube-apiserver in a new network namespace and returns
// once /readyz answers ok. Everything is stopped and removed in t.Cleanup.
// It fails the test, naming what is missing, without root, etcd or the
// kube-apiserver binary.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithOptions is Start with options.
func StartWithOptions(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	testenv.RequireRoot(t)
	etcdBin := EtcdBinary(t)
	apiserverBin := APIServerBinary(t)

	dir := t.TempDir()
	logs, err := logDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	pki, err := NewPKI(filepath.Join(dir, "pki"), net.ParseIP(Host), net.ParseIP(firstServiceIP))
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	ns := opts.NS
	if ns == nil {
		if ns, err = netns.New(); err != nil {
			t.Fatalf("control plane: %v", err)
		}
		t.Cleanup(func() { ns.Close() })
	}
	cp := &ControlPlane{
		NS: ns, Dir: dir, LogDir: logs, PKI: pki, tailed: map[string]bool{},
		URL:     fmt.Sprintf("https://%s:%d", Host, APIServerPort),
		EtcdURL: fmt.Sprintf("http://%s:%d", Host, EtcdClientPort),
	}
	// Registered before any process starts, so it runs after every cleanup
	// a test adds later (they may still talk to the API server).
	t.Cleanup(func() { cp.shutdown(t) })

	begin := time.Now()
	cp.startEtcd(t, etcdBin)
	cp.apiserverArgv = append(cp.apiServerArgs(apiserverBin), opts.APIServerArgs...)
	cp.AdminConfig = cp.RESTConfig(&rest.TLSClientConfig{CAFile: pki.CACert, CertFile: pki.AdminCert, KeyFile: pki.AdminKey})
	if cp.Admin, err = kubernetes.NewForConfig(cp.AdminConfig); err != nil {
		t.Fatalf("control plane: admin client: %v", err)
	}
	if cp.AdminKubeconfig, err = cp.writeKubeconfig("admin", kubeconfigUser{certFile: pki.AdminCert, keyFile: pki.AdminKey}); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.StartAPIServer(t)
	t.Logf("control plane ready in %v (etcd and kube-apiserver in netns %s, logs in %s)",
		time.Since(begin).Round(time.Millisecond), ns.Path(), logs)
	return cp
}

// firstServiceIP is the kubernetes Service's address in ServiceCIDR, which
// the serving certificate must name.
const firstServiceIP = "10.96.0.1"

func (cp *ControlPlane) startEtcd(t testing.TB, bin string) {
	t.Helper()
	peer := fmt.Sprintf("http://%s:%d", Host, EtcdPeerPort)
	p, err := StartProcess(cp.NS, "etcd", cp.LogDir, nil, bin,
		"--name=e2e",
		"--data-dir="+filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls="+cp.EtcdURL,
		"--advertise-client-urls="+cp.EtcdURL,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=e2e="+peer,
		"--logger=zap", "--log-outputs=stderr",
		// etcd 3.4.23 cannot answer kube-apiserver's on-demand progress
		// requests (3.4.31 can), so a watch cache learns that it is current
		// only from these periodic notifications; at the default 10m a watch
		// or an informer's first watch waits up to 3s for a fresh cache.
		"--experimental-watch-progress-notify-interval=100ms",
	)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.etcd = p
	client := &http.Client{Transport: &http.Transport{DialContext: NSDialer(cp.NS)}, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	err = waitFor(t.Context(), p, etcdStartTimeout, func(ctx context.Context) error {
		return etcdHealthy(ctx, client, cp.EtcdURL+"/health")
	})
	if err != nil {
		cp.tailed[p.Name] = true
		t.Fatalf("control plane: etcd not healthy: %v\nlast lines of %s:\n%s", err, p.LogPath, p.Tail(tailLines))
	}
}

func etcdHealthy(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return nil
}

func (cp *ControlPlane) apiServerArgs(bin string) []string {
	return []string{bin,
		"--etcd-servers=" + cp.EtcdURL,
		"--bind-address=" + Host,
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		// No default route in the namespace: the advertised address cannot be
		// guessed from one, and the endpoint reconciler would publish it.
		"--advertise-address=" + Host,
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--cert-dir=" + filepath.Join(cp.Dir, "apiserver-certs"),
		"--tls-cert-file=" + cp.PKI.ServingCert,
		"--tls-private-key-file=" + cp.PKI.ServingKey,
		"--client-ca-file=" + cp.PKI.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + cp.PKI.SAPub,
		"--service-account-signing-key-file=" + cp.PKI.SAKey,
		"--authorization-mode=Node,RBAC",
		// The ServiceAccount admission plugin rejects pods until the
		// "default" ServiceAccount exists, which only the controller-manager
		// (absent here) creates. The agent's own ServiceAccount and tokens
		// do not depend on it.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		// A graceful stop otherwise waits for every open watch (each client's
		// informers hold some) until stopGrace ends it with SIGKILL: 30s
		// measured, against 1.2s with this.
		"--shutdown-watch-termination-grace-period=1s",
		// Fewer goroutines on a 2-core machine; the tests' load is tiny.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
}

// StartAPIServer starts kube-apiserver with the same flags, certificates and
// port as before and waits for /readyz. Use it after StopAPIServer.
func (cp *ControlPlane) StartAPIServer(t testing.TB) {
	t.Helper()
	if cp.apiserver != nil {
		t.Fatal("StartAPIServer: kube-apiserver is already running")
	}
	p, err := StartProcess(cp.NS, "kube-apiserver", cp.LogDir, nil, cp.apiserverArgv...)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.apiserver = p
	rc := cp.Admin.Discovery().RESTClient()
	err = waitFor(t.Context(), p, apiServerStartTimeout, func(ctx context.Context) error {
		body, err := rc.Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("GET /readyz: %w: %s", err, body)
		}
		return nil
	})
	if err != nil {
		cp.tailed[p.Name] = true
		t.Fatalf("control plane: kube-apiserver not ready: %v\nlast lines of %s:\n%s", err, p.LogPath, p.Tail(tailLines))
	}
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after a grace
// period) and leaves etcd running, so objects survive a StartAPIServer.
func (cp *ControlPlane) StopAPIServer(t testing.TB) {
	t.Helper()
	if cp.apiserver == nil {
		t.Fatal("StopAPIServer: kube-apiserver is not running")
	}
	if err := cp.apiserver.Stop(stopGrace); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.apiserver = nil
}

// RestartEtcd stops etcd (SIGTERM, then SIGKILL after a grace period) and
// starts it again on the same data, as after a crash or an upgrade; the API
// server keeps running and reconnects.
func (cp *ControlPlane) RestartEtcd(t testing.TB) {
	t.Helper()
	if err := cp.etcd.Stop(stopGrace); err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp.startEtcd(t, EtcdBinary(t))
}

// shutdown stops the API server before etcd, so it does not spend the stop
// retrying a vanished etcd, and shows the logs when the test failed.
func (cp *ControlPlane) shutdown(t testing.TB) {
	var errs []error
	for _, p := range []*Process{cp.apiserver, cp.etcd} {
		if p == nil {
			continue
		}
		if err := p.Stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	cp.apiserver, cp.etcd = nil, nil
	if err := errors.Join(errs...); err != nil {
		t.Errorf("control plane cleanup: %v", err)
	}
	if t.Failed() {
		for _, name := range []string{"etcd", "kube-apiserver"} {
			if cp.tailed[name] {
				continue
			}
			path := filepath.Join(cp.LogDir, name+".log")
			t.Logf("last lines of %s:\n%s", path, TailFile(path, tailLines))
		}
	}
}

// waitFor polls check until it succeeds, the process exits, or timeout.
func waitFor(ctx context.Context, p *Process, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		last = check(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited (%v) while starting; last check: %v", p.Name, p.ExitError(), last)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %w", timeout, last)
		case <-tick.C:
		}
	}
}

// NSDialer returns a dial function whose sockets are created inside ns, for
// HTTP transports and client-go's rest.Config.Dial. Addresses must be IP
// literals: a name lookup could run on another thread, outside ns.
func NSDialer(ns *netns.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.Do(func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// StartProcess starts argv inside the control plane's namespace, logging to
// LogDir/name.log, and stops it (SIGTERM, then SIGKILL) in t.Cleanup, before
// the control plane stops. For the agent under test and other helpers; a
// test that kills or restarts the process itself may do so, cleanup then has
// nothing left to stop.
func (cp *ControlPlane) StartProcess(t testing.TB, name string, argv ...string) *Process {
	t.Helper()
	p, err := StartProcess(cp.NS, name, cp.LogDir, nil, argv...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(stopGrace); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.LogPath, p.Tail(tailLines))
		}
	})
	return p
}
