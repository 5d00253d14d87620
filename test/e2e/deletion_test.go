package e2e

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// The scenario that handed one epoch to two terms: the holder is killed, someone
// runs `kubectl delete lease`, and a freshly started manager — which never saw the
// old Lease — becomes the candidate. It must create the Lease above the epoch the
// group's status recorded, and only once the killed holder's term must have ended.
func TestDeletedLeaseKeepsTheEpochGrowing(t *testing.T) {
	c := newCluster(t)
	a := c.startManager("manager-a", false)
	c.group("payments")
	g := c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	recorded := g.Status.Transitions
	lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}

	a.kill(t)
	// No manager runs to record its epoch: the Lease waits for one, terminating.
	if out, err := runKubectl(t, cp.Kubeconfig, "", "delete", "lease", "--wait=false", "-n", c.namespace, "payments"); err != nil {
		t.Fatalf("kubectl delete lease: %v\n%s", err, out)
	}
	started := time.Now()
	c.startManager("manager-b", false)
	waitForLeaseHolder(t, lease, "manager-b", 2*leaseDuration+10*time.Second)
	l := getLease(t, lease)
	if leaserecord.Epoch(l) <= recorded {
		t.Errorf("the re-created Lease is at epoch %d, not above the %d the group recorded", leaserecord.Epoch(l), recorded)
	}
	if waited := l.Spec.AcquireTime.Sub(started); waited < leaseDuration-100*time.Millisecond {
		t.Errorf("manager-b re-created the Lease %s after it started, before leaseDuration %s: the killed holder could still lead", waited, leaseDuration)
	}
	g = c.waitFor("payments", 10*time.Second, "manager-b's term recorded", heldBy("manager-b"))
	for i := 1; i < len(g.Status.History); i++ {
		if g.Status.History[i].Transition >= g.Status.History[i-1].Transition {
			t.Errorf("history goes back in epochs: %s", describeHistory(g))
		}
	}
	if g.Status.History[0].StartReason != v1alpha1.StartElected || g.Status.Transitions != leaserecord.Epoch(l) {
		t.Errorf("status %s, history %s: want manager-b Elected at epoch %d", statusString(g), describeHistory(g), leaserecord.Epoch(l))
	}
}

// The fault suite's epoch gap: a term nobody recorded — its holder the status
// writer, whose status writes fail — and its Lease deleted; then the only process
// that saw that epoch dies, and a fresh manager re-creates the Lease. Everything it
// can read (the group's status) is below the lost epoch, so only the deleted Lease
// itself can tell it: the Lease must outlive its deletion until its epoch is
// recorded, and the new term must start above it.
func TestLeaseDeletedBeforeItsTermWasRecordedKeepsItsEpoch(t *testing.T) {
	c := newCluster(t)
	a := c.startManager("manager-a", false)
	c.group("payments")
	c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	b := c.startManager("manager-b", false)
	g := c.waitFor("payments", 10*time.Second, "manager-b a candidate", func(g *v1alpha1.LeaderGroup) bool {
		return slices.ContainsFunc(g.Status.Candidates, func(c v1alpha1.CandidateStatus) bool { return c.Identity == "manager-b" })
	})
	recorded := g.Status.Transitions

	unfreeze := freezeStatus(t, c)
	a.terminate(t) // manager-b takes the group and becomes the status writer
	lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	waitForLeaseHolder(t, lease, "manager-b", 2*leaseDuration)
	lost := leaserecord.Epoch(getLease(t, lease))
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: c.namespace, Name: "payments"}, g); err != nil {
		t.Fatal(err)
	}
	if g.Status.Transitions >= lost {
		t.Fatalf("status recorded epoch %d while status writes were refused: the test set-up did not hold", g.Status.Transitions)
	}
	if err := clientset.CoordinationV1().Leases(c.namespace).Delete(context.Background(), lease.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	b.kill(t)
	unfreeze()

	c.startManager("manager-c", false)
	waitForLeaseHolder(t, lease, "manager-c", 3*leaseDuration+10*time.Second)
	if epoch := leaserecord.Epoch(getLease(t, lease)); epoch <= lost {
		t.Errorf("manager-c leads the re-created Lease at epoch %d: manager-b's term already had epoch %d (the group had recorded %d)", epoch, lost, recorded)
	}
	g = c.waitFor("payments", 10*time.Second, "manager-c's term recorded", heldBy("manager-c"))
	if !slices.ContainsFunc(g.Status.History, func(e v1alpha1.HistoryEntry) bool { return e.Holder == "manager-b" && e.Transition == lost }) {
		t.Errorf("history %s does not show manager-b's term at epoch %d", describeHistory(g), lost)
	}
}

// The same gap in an External group, whose electors are `elector --group`
// processes: they keep the epoch of a served group's Lease in its namespace as the
// managers do — here from e-2's acquisition on, as e-1 may have started before the
// manager first served the group. The status writer that saw the unrecorded term
// dies with its holder.
func TestExternalLeaseDeletedBeforeItsTermWasRecordedKeepsItsEpoch(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	a := c.startManager("manager-a", false)
	c.group("jobs", external)
	e1 := c.startElector(kids, electorArgs{id: "e-1", election: groupArgs("jobs"), child: []string{}})
	c.waitFor("jobs", 10*time.Second, "held by e-1", heldBy("e-1"))
	e2 := c.startElector(kids, electorArgs{id: "e-2", election: groupArgs("jobs"), child: []string{}})
	e2.WaitForOutput(t, `"holder":"e-1"`, 10*time.Second) // it follows

	unfreeze := freezeStatus(t, c)
	if err := e1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e1.Wait(t, 10*time.Second)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "jobs"}
	waitForLeaseHolder(t, lease, "e-2", 2*leaseDuration)
	l := getLease(t, lease)
	lost := leaserecord.Epoch(l)
	if !leaserecord.Kept(l) {
		t.Errorf("e-2 took the Lease of a served group without keeping its epoch: finalizers %v", l.Finalizers)
	}
	a.kill(t)
	g := &v1alpha1.LeaderGroup{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: c.namespace, Name: "jobs"}, g); err != nil {
		t.Fatal(err)
	}
	if g.Status.Transitions >= lost {
		t.Fatalf("status recorded epoch %d while status writes were refused: the test set-up did not hold", g.Status.Transitions)
	}
	if err := clientset.CoordinationV1().Leases(c.namespace).Delete(context.Background(), lease.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e2.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e2.Wait(t, 10*time.Second)
	unfreeze()

	c.startManager("manager-b", false)
	c.startElector(kids, electorArgs{id: "e-3", election: groupArgs("jobs"), child: []string{}})
	waitForLeaseHolder(t, lease, "e-3", 3*leaseDuration+10*time.Second)
	if epoch := leaserecord.Epoch(getLease(t, lease)); epoch <= lost {
		t.Errorf("e-3 leads the re-created Lease at epoch %d: e-2's term already had epoch %d (the group had recorded %d)", epoch, lost, g.Status.Transitions)
	}
	g = c.waitFor("jobs", 10*time.Second, "e-3's term recorded", heldBy("e-3"))
	if !slices.ContainsFunc(g.Status.History, func(e v1alpha1.HistoryEntry) bool { return e.Holder == "e-2" && e.Transition == lost }) {
		t.Errorf("history %s does not show e-2's term at epoch %d", describeHistory(g), lost)
	}
}

// An External group no manager serves: nobody would let a kept Lease go, so its
// electors do not keep the epoch, and a deleted Lease is created again.
func TestExternalLeaseOfAGroupNoManagerServesIsCreatedAgainAfterADeletion(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	c.group("jobs", external)
	c.startElector(kids, electorArgs{id: "e-1", election: groupArgs("jobs"), child: []string{}})
	lease := types.NamespacedName{Namespace: c.namespace, Name: "jobs"}
	waitForLeaseHolder(t, lease, "e-1", 10*time.Second)
	if l := getLease(t, lease); leaserecord.Kept(l) {
		t.Fatalf("the Lease of a group no manager serves carries finalizers %v: nobody would let it go", l.Finalizers)
	}
	deleted := time.Now()
	if err := clientset.CoordinationV1().Leases(c.namespace).Delete(context.Background(), lease.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForLeaseHolder(t, lease, "e-1", 2*leaseDuration+10*time.Second)
	if waited := getLease(t, lease).Spec.AcquireTime.Sub(deleted); waited < leaseDuration-100*time.Millisecond {
		t.Errorf("e-1 created the Lease again %s after the deletion, before leaseDuration %s", waited, leaseDuration)
	}
}

// freezeStatus refuses every status write to the namespace's groups, with a
// ValidatingAdmissionPolicy, until the returned function is called; both wait until
// the API server applies the change.
func freezeStatus(t *testing.T, c *cluster) (unfreeze func()) {
	t.Helper()
	namespace := c.namespace
	ctx := context.Background()
	name := "freeze-status-" + namespace
	policies := clientset.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := clientset.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: namespace}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group},
						APIVersions: []string{v1alpha1.GroupVersion.Version}, Resources: []string{"leadergroups/status"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "status frozen by the test"}},
		}}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}}}
	if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A probe group's status write tells when the policy is in force.
	probe := c.group("status-probe", func(g *v1alpha1.LeaderGroup) { g.Spec.Candidates.Source = v1alpha1.SourceExternal })
	refused := func(want bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			p := &v1alpha1.LeaderGroup{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(probe), p); err != nil {
				return false, err
			}
			p.Status.ObservedGeneration++
			err := k8s.Status().Update(ctx, p)
			if apierrors.IsConflict(err) {
				return false, nil // a manager wrote it meanwhile
			}
			return (err != nil && strings.Contains(err.Error(), "status frozen by the test")) == want, nil
		})
		if err != nil {
			t.Fatalf("status writes refused=%v not in force within 30s: %v", want, err)
		}
	}
	refused(true)
	return func() {
		t.Helper()
		if err := bindings.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := policies.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		refused(false)
	}
}

// A group deleted while no manager runs: its Lease, deleted by the garbage
// collector, waits for a status writer, as its epoch could still matter; there is
// no group left to record it in, so the first manager to write status lets it go.
func TestLeaseOfAGroupDeletedWhileNoManagerRanGoesWithTheNextOne(t *testing.T) {
	c := newCluster(t)
	a := c.startManager("manager-a", false)
	c.group("payments")
	c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	a.kill(t)
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: c.namespace}}
	if err := k8s.Delete(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := clientset.CoordinationV1().Leases(c.namespace).Get(ctx, lease.Name, metav1.GetOptions{})
		return err == nil && leaserecord.Deleting(l) && leaserecord.Kept(l), err
	})
	if err != nil {
		t.Fatalf("the orphaned Lease is not waiting, deleted and kept: %v", err)
	}

	c.startManager("manager-b", false)
	// manager-b writes status once manager-a's hold on the manager's lock expires.
	pollLease(t, lease, leaseDuration+10*time.Second, "gone", func(l *leaseView) bool { return l == nil })
}
