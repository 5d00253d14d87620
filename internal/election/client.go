package election

import (
	"net"
	"time"

	"k8s.io/client-go/rest"
)

// ClientConfig is cfg made fit for electors' Lease traffic:
//   - no client-side rate limit: a renewal held back by one loses leadership (API
//     Priority and Fairness shapes the traffic on the server instead, and the
//     pacer spaces renewals out when the server is slow);
//   - protobuf, which costs kube-apiserver and the process far less than JSON for
//     every write and every watch event;
//   - a connection of its own: client-go shares one HTTP/2 connection between
//     clients with the same credentials, and a renewal must not queue behind the
//     process's other requests (status writes, lists) for the connection's streams.
//     A dial function of its own gives the config a transport of its own.
func ClientConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return cfg
}
