package framework

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the set of credentials one control plane uses, written as PEM files
// under Dir. It is made once per control plane, so a restarted API server
// keeps its identity and every token and client certificate stays valid.
type PKI struct {
	Dir string

	CACert, CAKey           string // signs the serving and client certificates
	ServingCert, ServingKey string // kube-apiserver's TLS identity
	AdminCert, AdminKey     string // a client in system:masters
	SAKey, SAPub            string // signs and verifies service-account tokens

	CAPEM []byte // CACert's contents, for kubeconfigs
}

// AdminUser and AdminGroup name the client certificate's subject: the
// group system:masters bypasses authorization, as a cluster admin does.
const (
	AdminUser  = "kube-fence-e2e-admin"
	AdminGroup = "system:masters"
)

// NewPKI generates a CA, a serving certificate for the given IPs, an admin
// client certificate and a service-account key pair, and writes them to dir.
func NewPKI(dir string, servingIPs ...net.IP) (*PKI, error) {
	p := &PKI{
		Dir:    dir,
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		ServingCert: filepath.Join(dir, "apiserver.crt"), ServingKey: filepath.Join(dir, "apiserver.key"),
		AdminCert: filepath.Join(dir, "admin.crt"), AdminKey: filepath.Join(dir, "admin.key"),
		SAKey: filepath.Join(dir, "sa.key"), SAPub: filepath.Join(dir, "sa.pub"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create PKI dir: %w", err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "kube-fence-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caKey, caDER, err := issue(ca, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("generate CA: %w", err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(7 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: servingIPs,
	}
	servingKey, servingDER, err := issue(serving, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("generate serving certificate: %w", err)
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: AdminUser, Organization: []string{AdminGroup}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(7 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	adminKey, adminDER, err := issue(admin, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("generate admin client certificate: %w", err)
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate service-account key: %w", err)
	}
	p.CAPEM = pemBlock("CERTIFICATE", caDER)
	files := []struct {
		path string
		data []byte
	}{
		{p.CACert, p.CAPEM},
		{p.CAKey, mustKeyPEM(caKey)},
		{p.ServingCert, pemBlock("CERTIFICATE", servingDER)},
		{p.ServingKey, mustKeyPEM(servingKey)},
		{p.AdminCert, pemBlock("CERTIFICATE", adminDER)},
		{p.AdminKey, mustKeyPEM(adminKey)},
		{p.SAKey, mustKeyPEM(saKey)},
		{p.SAPub, mustPublicPEM(saKey.Public())},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return p, nil
}

// issue makes a key for tmpl and signs tmpl with parent's key, or with its
// own when parent is nil (a self-signed CA).
func issue(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	return key, der, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// mustKeyPEM encodes a key this package just generated; marshalling a valid
// P-256 key cannot fail.
func mustKeyPEM(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(fmt.Sprintf("marshal generated key: %v", err))
	}
	return pemBlock("PRIVATE KEY", der)
}

func mustPublicPEM(k crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(fmt.Sprintf("marshal generated public key: %v", err))
	}
	return pemBlock("PUBLIC KEY", der)
}
