package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	v1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	cnpclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
	cnpinformers "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions"

	"github.com/kube-fence/kube-fence/internal/cluster"
)

// The ClusterNetworkPolicy API the agent watches: network-policy-api
// v0.3.0's CRD serves it (and v1alpha2, the same schema).
var cnpGroupVersion = v1beta1.SchemeGroupVersion

const cnpResource = "clusternetworkpolicies"

// cnpWatch runs the ClusterNetworkPolicy informer while the API server
// serves the resource. ClusterNetworkPolicy is a CRD that many clusters do
// not have, so the agent asks discovery (one small GET, allowed to every
// authenticated user by the default system:discovery role) every interval,
// starts the informer when the resource appears and stops it, forgetting
// every ClusterNetworkPolicy, when it goes: deleting a CRD deletes its
// objects, so none is in force any more.
type cnpWatch struct {
	log       *slog.Logger
	discovery resourceLister
	client    cnpclient.Interface
	store     *store
	interval  time.Duration

	// epoch numbers the informers started, so that the store can tell
	// the current one's events from a stopped one's late ones.
	epoch int
	stop  context.CancelFunc // stops the running informer; nil when none runs
	// recheck asks run for a discovery call now: the informer's list or
	// watch found the resource gone, which would otherwise fail (and
	// log) until the next interval.
	recheck chan struct{}
}

func newCNPWatch(log *slog.Logger, disc resourceLister, client cnpclient.Interface, st *store, interval time.Duration) *cnpWatch {
	return &cnpWatch{log: log, discovery: disc, client: client, store: st, interval: interval, recheck: make(chan struct{}, 1)}
}

// resourceLister is the part of discovery.DiscoveryInterface cnpWatch uses.
type resourceLister interface {
	ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error)
}

var _ resourceLister = discovery.DiscoveryInterface(nil)

// served asks discovery whether the API server serves
// ClusterNetworkPolicies in the version the agent reads.
func (w *cnpWatch) served() (bool, error) {
	list, err := w.discovery.ServerResourcesForGroupVersion(cnpGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", cnpGroupVersion, err)
	}
	for _, r := range list.APIResources {
		if r.Name == cnpResource {
			return true, nil
		}
	}
	return false, nil
}

// startup decides once, before the first sync, whether ClusterNetworkPolicies
// are served. It retries a failing discovery until ctx ends: enforcing
// without an admin tier that exists would open what it denies. When they
// are served it starts the informer and returns its sync check, so the first
// sync waits for their initial list as for the others'. Start run right
// after it, so a CRD removed during that wait ends the wait.
func (w *cnpWatch) startup(ctx context.Context) (cache.InformerSynced, error) {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		ok, err := w.served()
		if err == nil {
			if !ok {
				w.log.Info("ClusterNetworkPolicy is not served (CRD not installed); enforcing without the admin and baseline tiers until it is",
					"groupVersion", cnpGroupVersion.String(), "checkEvery", w.interval)
				return nil, nil
			}
			return w.start(ctx, false)
		}
		w.log.Warn("cannot tell whether ClusterNetworkPolicy is served; retrying", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for API discovery: %w", context.Cause(ctx))
		case <-time.After(delay):
		}
	}
}

// start runs a new informer. With hold, the store keeps its objects from
// the compiler until its initial list is complete.
func (w *cnpWatch) start(ctx context.Context, hold bool) (cache.InformerSynced, error) {
	w.epoch++
	epoch := w.epoch
	w.store.beginClusterPolicies(epoch, hold)
	ictx, stop := context.WithCancel(ctx)
	factory := cnpinformers.NewSharedInformerFactoryWithOptions(w.client, resyncNever,
		cnpinformers.WithTransform(trimClusterPolicy))
	inf := factory.Policy().V1beta1().ClusterNetworkPolicies().Informer()
	if err := inf.SetWatchErrorHandlerWithContext(w.watchError); err != nil {
		stop()
		return nil, fmt.Errorf("register ClusterNetworkPolicy watch error handler: %w", err)
	}
	h, err := inf.AddEventHandler(handlers(
		func(obj any) { w.store.setClusterPolicy(epoch, obj) },
		func(name string) { w.store.deleteClusterPolicy(epoch, name) }))
	if err != nil {
		stop()
		return nil, fmt.Errorf("register ClusterNetworkPolicy handler: %w", err)
	}
	factory.Start(ictx.Done())
	w.stop = func() { stop(); factory.Shutdown() }
	w.log.Info("watching ClusterNetworkPolicies", "groupVersion", cnpGroupVersion.String())
	// An informer stopped before its list completed (the CRD went away
	// meanwhile) never syncs; waiting for it must end all the same.
	return func() bool { return h.HasSynced() || !w.store.clusterPoliciesFrom(epoch) }, nil
}

// run polls discovery until ctx ends, starting and stopping the informer
// as the resource comes and goes.
func (w *cnpWatch) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	defer func() {
		if w.stop != nil {
			w.stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.recheck:
		}
		ok, err := w.served()
		switch {
		case err != nil:
			w.log.Debug("ClusterNetworkPolicy discovery failed; keeping the current state", "err", err)
		case ok && w.stop == nil:
			synced, err := w.start(ctx, true)
			if err != nil {
				w.log.Warn("cannot watch ClusterNetworkPolicies; retrying", "err", err)
				continue
			}
			go w.release(ctx, w.epoch, synced)
		case !ok && w.stop != nil:
			w.stop()
			w.stop = nil
			w.store.endClusterPolicies()
			w.log.Warn("ClusterNetworkPolicy is no longer served (CRD removed); enforcing without the admin and baseline tiers",
				"groupVersion", cnpGroupVersion.String())
		}
	}
}

// watchError runs on the informer's goroutine when a list or watch fails.
// A 404 means the resource went away: discovery is asked at once instead of
// logging the failure until the next interval.
func (w *cnpWatch) watchError(ctx context.Context, r *cache.Reflector, err error) {
	if !apierrors.IsNotFound(err) {
		cache.DefaultWatchErrorHandler(ctx, r, err)
		return
	}
	w.log.Debug("ClusterNetworkPolicy list or watch found no resource; asking discovery", "err", err)
	select {
	case w.recheck <- struct{}{}:
	default:
	}
}

// release hands the informer's objects to the compiler once its initial
// list is complete.
func (w *cnpWatch) release(ctx context.Context, epoch int, synced cache.InformerSynced) {
	if cache.WaitForCacheSync(ctx.Done(), synced) && w.store.listedClusterPolicies(epoch) {
		w.log.Info("ClusterNetworkPolicies listed; enforcing the admin and baseline tiers")
	}
}

// trimClusterPolicy keeps the name, UID, spec and the audit mode
// annotation: status and managed fields are never read.
func trimClusterPolicy(obj any) (any, error) {
	if o, ok := obj.(*v1beta1.ClusterNetworkPolicy); ok {
		meta := trimMeta(o.ObjectMeta)
		if mode, ok := o.Annotations[cluster.ModeAnnotation]; ok { // audit mode
			meta.Annotations = map[string]string{cluster.ModeAnnotation: mode}
		}
		return &v1beta1.ClusterNetworkPolicy{ObjectMeta: meta, Spec: o.Spec}, nil
	}
	return obj, nil
}
