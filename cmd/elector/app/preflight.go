package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

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
