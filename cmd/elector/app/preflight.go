package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// attemptTimeout bounds one request of the start-up checks: a partitioned API
// server would otherwise hold it for ever.
const attemptTimeout = 10 * time.Second

// withRetry runs fn until it succeeds or fails for a reason a retry cannot fix,
// backing off (0.5s doubling to 30s) while the API server cannot be reached, and
// saying so in the log. It gives up when ctx ends (a signal).
func withRetry(ctx context.Context, logger logr.Logger, server string, fn func(context.Context) error) error {
	backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: math.MaxInt32, Cap: 30 * time.Second}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil || !unreachable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped while waiting for the API server at %s: %w", server, err)
		}
		delay := backoff.Step()
		logger.Info("Cannot reach the API server, retrying", "server", server, "attempt", attempt,
			"retryIn", delay.Round(time.Millisecond).String(), "err", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for the API server at %s: %w", server, err)
		case <-time.After(delay):
		}
	}
}

// unreachable tells an error a retry may fix (the API server cannot be reached, or
// is overloaded) from an answer that will not change (forbidden, not found, a
// certificate that does not verify).
func unreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
			apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err)
	}
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
	)
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) {
		return false
	}
	var (
		uerr *url.Error
		nerr net.Error
	)
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &uerr) || errors.As(err, &nerr) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
}

// leaseVerbs are what an elector does with its Lease: read it through an informer
// (list, watch), create it when missing, and renew it. get and update may be
// restricted to the Lease by name; the informer lists the whole namespace.
var leaseVerbs = []struct{ verb, byName string }{{"get", "name"}, {"list", ""}, {"watch", ""}, {"create", ""}, {"update", "name"}}

// checkLeaseAccess asks the API server (SelfSubjectAccessReview) whether this user
// may do what an elector does with lease, so that missing RBAC is a clear error at
// start, not a stream of failed renewals. Only create may be missing, with a
// warning: a Lease that exists already needs no create.
func checkLeaseAccess(ctx context.Context, logger logr.Logger, cs kubernetes.Interface, lease types.NamespacedName) error {
	var missing []string
	for _, v := range leaseVerbs {
		attrs := &authorizationv1.ResourceAttributes{Namespace: lease.Namespace, Verb: v.verb, Group: "coordination.k8s.io", Resource: "leases"}
		if v.byName != "" {
			attrs.Name = lease.Name
		}
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}},
			metav1.CreateOptions{})
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
			logger.V(1).Info("Cannot check RBAC in advance; renewals will tell", "err", err.Error())
			return nil
		}
		if err != nil {
			return err
		}
		if !r.Status.Allowed {
			missing = append(missing, v.verb)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	who := whoAmI(ctx, cs)
	if slices.Equal(missing, []string{"create"}) {
		logger.Info("Missing RBAC: cannot create leases; fine while the Lease exists", "lease", lease.String(), "user", who)
		return nil
	}
	return fmt.Errorf("missing RBAC: %s cannot %s leases.coordination.k8s.io in namespace %q; an elector needs get, list, watch, create and update on leases there",
		who, strings.Join(missing, ", "), lease.Namespace)
}

// whoAmI names the authenticated user for an error message.
func whoAmI(ctx context.Context, cs kubernetes.Interface) string {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r.Status.UserInfo.Username == "" {
		return "this user"
	}
	return fmt.Sprintf("user %q", r.Status.UserInfo.Username)
}
