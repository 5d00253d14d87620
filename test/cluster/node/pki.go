package node

import (
	"context"
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
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The identities of the cluster's parts, as the API server's authorizers know them.
var identities = []struct {
	kubeconfig  string
	user, group string
}{
	{"admin", "kubernetes-admin", "system:masters"},
	{"controller-manager", "system:kube-controller-manager", ""},
	{"scheduler", "system:kube-scheduler", ""},
	{"kubelet", "system:node:" + NodeName, "system:nodes"},
	{"proxy", "system:kube-proxy", ""},
}

// writePKI makes a CA of the cluster's own and signs with it the API server's serving
// certificate, the kubelet's, and a client certificate per part; the ServiceAccount
// token key is separate. Every part gets a kubeconfig of its own.
func (c *Cluster) writePKI(context.Context) error {
	ca, caKey, err := newCA()
	if err != nil {
		return err
	}
	if err := writeCert(c.path("ca.crt"), c.path("ca.key"), ca, caKey); err != nil {
		return err
	}
	apiserver := []string{"127.0.0.1", Gateway, KubernetesServiceIP,
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if err := c.signTo("apiserver", ca, caKey, "kube-apiserver", "", apiserver, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	if err := c.signTo("kubelet-serving", ca, caKey, NodeName, "", []string{Gateway, NodeName}, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	if err := c.signTo("apiserver-kubelet-client", ca, caKey, "kube-apiserver-kubelet-client", "system:masters", nil, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	for _, id := range identities {
		if err := c.signTo(id.kubeconfig, ca, caKey, id.user, id.group, nil, x509.ExtKeyUsageClientAuth); err != nil {
			return err
		}
		if err := c.writeKubeconfig(id.kubeconfig); err != nil {
			return err
		}
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(c.path("sa.key"), "EC PRIVATE KEY", der, 0o600); err != nil {
		return err
	}
	return writePEM(c.path("sa.pub"), "PUBLIC KEY", pub, 0o644)
}

// writeKubeconfig writes name.kubeconfig for the client certificate name.crt.
func (c *Cluster) writeKubeconfig(name string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["election-manager"] = &clientcmdapi.Cluster{
		Server:               fmt.Sprintf("https://%s:%d", Gateway, APIServerPort),
		CertificateAuthority: c.path("ca.crt"),
	}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: c.path(name + ".crt"), ClientKey: c.path(name + ".key")}
	cfg.Contexts["election-manager"] = &clientcmdapi.Context{Cluster: "election-manager", AuthInfo: name}
	cfg.CurrentContext = "election-manager"
	return clientcmd.WriteToFile(*cfg, c.path(name+".kubeconfig"))
}

func newCA() (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "election-manager-cluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// signTo writes name.crt and name.key: a certificate for cn (and group, as its
// organization) with the addresses and DNS names in sans.
func (c *Cluster) signTo(name string, ca *x509.Certificate, caKey crypto.Signer, cn, group string, sans []string, usage x509.ExtKeyUsage) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if group != "" {
		tmpl.Subject.Organization = []string{group}
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	return writeCert(c.path(name+".crt"), c.path(name+".key"), cert, key)
}

func writeCert(certPath, keyPath string, cert *x509.Certificate, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(certPath, "CERTIFICATE", cert.Raw, 0o644); err != nil {
		return err
	}
	return writePEM(keyPath, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}
