//go:build cluster

package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// testMetrics scrapes the managers through the chart's metrics Service, from the node,
// as Prometheus would: with a ServiceAccount token bound to the chart's metrics-reader
// role. A token without that permission, and no token, are refused.
func testMetrics(t *testing.T) {
	svc, err := clientset.CoreV1().Services(namespace).Get(context.Background(), release+"-metrics", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://%s:8443/metrics", svc.Spec.ClusterIP)
	apply(t, `apiVersion: v1
kind: ServiceAccount
metadata: {name: scraper, namespace: default}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: stranger, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scraper-reads-election-manager-metrics}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: `+release+`-metrics-reader}
subjects: [{kind: ServiceAccount, name: scraper, namespace: default}]
`)
	scraper := strings.TrimSpace(run(t, kubectl, "create", "token", "scraper", "-n", "default"))
	stranger := strings.TrimSpace(run(t, kubectl, "create", "token", "stranger", "-n", "default"))

	// The binding reaches the managers' authorizer through the API server, within a few seconds.
	var body string
	eventually(t, "a scrape with the scraper's token", time.Minute, func() (bool, error) {
		code, b, err := scrape(url, scraper)
		body = b
		return code == http.StatusOK, err
	})
	for _, metric := range []string{"controller_runtime_reconcile_total", "election_manager_"} {
		if !strings.Contains(body, metric) {
			t.Errorf("the scrape has no %s", metric)
		}
	}
	for _, c := range []struct {
		who, token string
		want       int
	}{{"a token without the metrics-reader role", stranger, http.StatusForbidden}, {"no token", "", http.StatusUnauthorized}} {
		code, _, err := scrape(url, c.token)
		if err != nil || code != c.want {
			t.Errorf("a scrape with %s: %d (%v), want %d", c.who, code, err, c.want)
		}
	}
}

func scrape(url, token string) (int, string, error) {
	// The manager serves metrics with a self-signed certificate, as the chart's default
	// ServiceMonitor (tlsConfig.insecureSkipVerify) expects.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see above
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
