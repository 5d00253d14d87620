package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/election-manager/election-manager/internal/controller"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/podsource"
)

// setUpElections wires the election machinery into mgr: one Lease informer and one
// registry for every elector in the process, the manager's own lock (its holder
// writes status), this instance's presence Lease, and the LeaderGroup controller.
func setUpElections(ctx context.Context, mgr ctrl.Manager, o *Options) error {
	clientset, err := kubernetes.NewForConfig(election.ClientConfig(mgr.GetConfig()))
	if err != nil {
		return fmt.Errorf("creating the clientset: %w", err)
	}
	leases, err := election.NewLeaseInformer(clientset, clock.RealClock{}, leaseNamespaces(o)...)
	if err != nil {
		return err
	}
	leasesClient := clientset.CoordinationV1()
	registry := election.NewRegistry(leasesClient, leases, ctrl.Log.WithName("elector"), election.Options{})

	r := &controller.LeaderGroupReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("election-manager"),
		Identity:                o.ID,
		Electors:                registry,
		Leases:                  leases,
		ExternalLeaseNamespaces: o.ExternalLeaseNamespaces,
	}
	if o.PodsSource {
		r.Pods = &podsource.Holder{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Leases: leasesClient, Clock: leases.Tracker().Clock()}
	}
	// The manager's own lock is an elector like any other: losing it stops status
	// writing, never the process or the group electors in it.
	r.Writer, err = election.New(o.lockConfig(o.Lock.Name), leasesClient, leases, election.Callbacks{
		OnStartedLeading: func(int32) {
			controller.StatusWriter.Set(1)
			ctrl.Log.Info("Became the status writer", "lock", o.Lock.Namespace+"/"+o.Lock.Name)
			r.EnqueueAll()
		},
		OnStoppedLeading: func() {
			controller.StatusWriter.Set(0)
			ctrl.Log.Info("No longer the status writer", "lock", o.Lock.Namespace+"/"+o.Lock.Name)
		},
	}, election.Options{})
	if err != nil {
		return fmt.Errorf("the manager's lock: %w", err)
	}
	if r.Pods != nil {
		r.Pods.Writing = r.Writer.IsLeader
	}
	presenceCfg := o.lockConfig(controller.PresenceLeaseName(o.Lock.Name, o.ID))
	presenceCfg.Labels = map[string]string{controller.LabelPresence: o.Lock.Name}
	presenceCfg.Annotations = controller.PresenceAnnotations(o.Namespaces, o.GroupSelector)
	presence, err := election.New(presenceCfg, leasesClient, leases, election.Callbacks{}, election.Options{})
	if err != nil {
		return fmt.Errorf("the presence Lease: %w", err)
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the LeaderGroup controller: %w", err)
	}

	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		// The informer outlives the stop below: leaders still releasing learn from it
		// when someone else took their Lease meanwhile.
		informed, stopInformer := context.WithCancel(context.WithoutCancel(ctx))
		defer stopInformer()
		leases.Start(informed)
		r.Writer.Start(ctx)
		presence.Start(ctx)
		<-ctx.Done()
		// A graceful stop first removes the presence Lease, so that this instance is
		// no longer a candidate (nobody hands a Lease back to it), then releases every
		// Lease it leads, a few at a time, so others take over each at once.
		releaseBy := time.Now().Add(releaseWithin)
		presence.Stop()
		err := deletePresence(clientset, presenceCfg.Lease)
		registry.StopAll(releaseBy)
		r.Writer.Stop()
		return err
	}))
}

// releaseWithin bounds how long a graceful stop paces its releases, from SIGTERM
// on: a third of Kubernetes' default grace period (the chart's too), which leaves
// the rest for the releases still in flight then, each bounded by its renewDeadline.
const releaseWithin = 10 * time.Second

// lockConfig is an elector config on the manager's own timings.
func (o *Options) lockConfig(name string) election.Config {
	return election.Config{
		Lease:           types.NamespacedName{Namespace: o.Lock.Namespace, Name: name},
		Identity:        o.ID,
		LeaseDuration:   o.Lock.LeaseDuration,
		RenewDeadline:   o.Lock.RenewDeadline,
		RetryPeriod:     o.Lock.RetryPeriod,
		ReleaseOnCancel: true,
	}
}

// leaseNamespaces are the namespaces whose Leases the process watches: all but
// kube-node-lease when it serves every namespace, else the served ones, the lock's,
// and those External groups may observe.
func leaseNamespaces(o *Options) []string {
	if len(o.Namespaces) == 0 {
		return nil
	}
	all := slices.Clone(o.Namespaces)
	for _, ns := range append([]string{o.Lock.Namespace}, o.ExternalLeaseNamespaces...) {
		if !slices.Contains(all, ns) {
			all = append(all, ns)
		}
	}
	return all
}

func deletePresence(clientset kubernetes.Interface, key types.NamespacedName) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := clientset.CoordinationV1().Leases(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		klog.Background().Error(err, "Deleting the presence Lease", "lease", key)
	}
	return nil
}
