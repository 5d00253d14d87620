package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/election-manager/election-manager/cmd/manager/app"
	"github.com/election-manager/election-manager/internal/testutil"
)

// candidateKubeconfig writes, into dir, a kubeconfig for the candidate processes
// that authenticates as a deployed manager does: with a ServiceAccount's token,
// which kube-apiserver verifies once and then caches, authorized by the manager's
// own ClusterRole (config/rbac/role.yaml). The admin's client certificate, which
// the local control plane gives, is verified on every request (a tenth of
// kube-apiserver's CPU under a stream of Lease writes, in a profile), and its user
// is in system:masters, whose requests API Priority and Fairness does not queue:
// neither is how a cluster sees a manager.
func candidateKubeconfig(dir string) (string, error) {
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return "", err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		return "", fmt.Errorf("config/rbac/role.yaml: %w", err)
	}
	const name, namespace = "bench-candidate", "bench-candidates"
	role.ObjectMeta = metav1.ObjectMeta{Name: name}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if _, err := admin.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}}}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	token, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token for the candidates' ServiceAccount: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token.Status.Token}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: name}
	cfg.CurrentContext = "bench"
	path := filepath.Join(dir, "candidate.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// candidateClients write as the candidates do: with their credentials,
// unthrottled, Leases and Events in protobuf as the managers send them.
type candidateClients struct {
	leases kubernetes.Interface
	groups client.Client
}

func newCandidateClients() (candidateClients, error) {
	var c candidateClients
	cfg, err := clientcmd.BuildConfigFromFlags("", candidates)
	if err != nil {
		return c, err
	}
	cfg.QPS, cfg.Burst = -1, 0
	pb := rest.CopyConfig(cfg)
	pb.ContentType = "application/vnd.kubernetes.protobuf"
	if c.leases, err = kubernetes.NewForConfig(pb); err != nil {
		return c, err
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return c, err
	}
	c.groups, err = client.New(cfg, client.Options{Scheme: scheme})
	return c, err
}
