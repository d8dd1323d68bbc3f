package framework

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// TokenLifetime is how long service-account tokens made for tests last:
// longer than any test, shorter than the certificates.
const TokenLifetime = 24 * time.Hour

// RESTConfig returns a client configuration for the API server whose
// connections are dialled inside the control plane's namespace, so the test
// process itself can talk to it.
func (cp *ControlPlane) RESTConfig(tls *rest.TLSClientConfig) *rest.Config {
	return &rest.Config{
		Host:            cp.URL,
		TLSClientConfig: *tls,
		Dial:            NSDialer(cp.NS),
		// The defaults (5 qps) would make table-driven setup slow.
		QPS:   200,
		Burst: 400,
	}
}

type kubeconfigUser struct {
	token             string
	certFile, keyFile string
}

// writeKubeconfig writes Dir/name.kubeconfig. The file is for processes run
// inside the namespace (the agent, kubectl via NS.Command): it has no dialer.
func (cp *ControlPlane) writeKubeconfig(name string, user kubeconfigUser) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: cp.PKI.CAPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: user.token, ClientCertificate: user.certFile, ClientKey: user.keyFile}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(cp.Dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return path, nil
}

// ServiceAccountToken returns a token for the ServiceAccount namespace/name
// from the TokenRequest API, valid for TokenLifetime. The ServiceAccount
// must exist.
func (cp *ControlPlane) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	seconds := int64(TokenLifetime / time.Second)
	tr, err := cp.Admin.CoreV1().ServiceAccounts(namespace).CreateToken(t.Context(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a fresh token and returns its path.
func (cp *ControlPlane) ServiceAccountKubeconfig(t testing.TB, namespace, name string) string {
	t.Helper()
	path, err := cp.writeKubeconfig("sa-"+namespace+"-"+name, kubeconfigUser{token: cp.ServiceAccountToken(t, namespace, name)})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// ClientForKubeconfig returns a clientset for a kubeconfig written by this
// framework, dialling inside the namespace, so a test can act exactly as the
// process that will use the file.
func (cp *ControlPlane) ClientForKubeconfig(t testing.TB, path string) (*kubernetes.Clientset, *rest.Config) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", path, err)
	}
	cfg.Dial = NSDialer(cp.NS)
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client for kubeconfig %s: %v", path, err)
	}
	return cs, cfg
}
