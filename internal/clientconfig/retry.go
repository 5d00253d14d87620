package clientconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
)

// AttemptTimeout bounds one request of the start-up checks: a partitioned API
// server would otherwise hold it for ever.
const AttemptTimeout = 10 * time.Second

// WithRetry runs fn until it succeeds or fails for a reason a retry cannot fix,
// backing off (0.5s doubling to 30s) while the API server cannot be reached or
// does not serve what fn asks for yet (NotYet), and saying so in the log. It gives
// up when ctx ends (a signal).
func WithRetry(ctx context.Context, logger logr.Logger, server string, fn func(context.Context) error) error {
	backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: math.MaxInt32, Cap: 30 * time.Second}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, AttemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil || !Unreachable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped while waiting for the API server at %s: %w", server, err)
		}
		delay := backoff.Step()
		msg := "Cannot reach the API server, retrying"
		if errors.As(err, new(notYet)) {
			msg = "The API server does not serve it yet, retrying"
		}
		logger.Info(msg, "server", server, "attempt", attempt,
			"retryIn", delay.Round(time.Millisecond).String(), "err", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for the API server at %s: %w", server, err)
		case <-time.After(delay):
		}
	}
}

// NotYet marks an answer of the API server that a retry may change: it serves a
// custom resource's API a moment after it starts.
func NotYet(err error) error { return notYet{err} }

type notYet struct{ error }

func (e notYet) Unwrap() error { return e.error }

// Unreachable tells an error a retry may fix (the API server cannot be reached, is
// overloaded, or does not serve it yet) from an answer that will not change
// (forbidden, not found, a certificate that does not verify).
func Unreachable(err error) bool {
	if errors.As(err, new(notYet)) {
		return true
	}
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
