package provision_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/templates"
)

// TestKubeClusterWithoutCDIOrPools_SimulatedVirtController runs the
// provisioner on a real kube-apiserver of its own that starts with
// KubeVirt's CRDs and webhooks but neither CDI's DataVolume CRD nor the
// VirtualMachinePool CRD, as many clusters are, then installs CDI, then the
// pool API, while the watcher runs. At each step a watcher started then
// syncs with the informers that can work there, a template needing a
// missing API is refused with a sentence naming the component (and one
// submitted without that check is failed with it), and an
// object of an API installed later is seen by the watcher already running.
// Paddock's Simulator plays virt-controller (VM status, instances, IPs,
// DataVolumes, pool members); the API server, admission and RBAC are real.
func TestKubeClusterWithoutCDIOrPools_SimulatedVirtController(t *testing.T) {
	ctx := context.Background()
	env, admin, cluster := ownCluster(t, kubetest.WithoutCDI(), kubetest.WithoutPools())
	ns, err := env.CreateNamespace(ctx, "apis")
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(testdb.New(t))
	hctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	// The Simulator's pool controller lists pools once at start: one is
	// started again once the pool API is there.
	simCtx, stopSim := context.WithCancel(hctx)
	startSim := func() {
		sim := provision.NewSimulator(admin, st, slog.New(slog.DiscardHandler), 0)
		sim.Namespace = ns
		go sim.Run(simCtx)
	}
	startSim()
	h := startHarnessConfigured(t, hctx, st, cluster, ns, ns, func(w *provision.Watcher) {
		w.Discovery = 200 * time.Millisecond
	})
	h.limit = 30 * time.Second
	specs := specsByName(t)

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
		}
	}
	// freshWatcher starts another watcher, as a Paddock started now would,
	// and returns it once synced.
	freshWatcher := func() *provision.Watcher {
		t.Helper()
		wctx, stop := context.WithCancel(hctx)
		t.Cleanup(stop)
		w := provision.NewNamespacedWatcher(st, cluster, slog.New(slog.DiscardHandler), ns)
		go func() { _ = w.Run(wctx, 0) }()
		waitFor("a watcher started now syncs", w.Synced)
		return w
	}
	submit := func(template, name string, replicas int) (store.Request, *store.ValidationError) {
		t.Helper()
		return submitAskingTheCluster(t, h, specs[template], name, replicas)
	}
	refused := func(template string, replicas int, field, want string) {
		t.Helper()
		_, verr := submit(template, "refused", replicas)
		if got := verr.For(field); !strings.Contains(got, want) {
			t.Errorf("%s (replicas %d) at %s: %q (all: %v), want %q", template, replicas, field, got, verr, want)
		}
	}

	// KubeVirt alone.
	waitFor("the watcher syncs without DataVolumes and pools", h.watcher.Synced)
	if got, want := h.watcher.APIs(), (provision.APIs{Known: true}); got != want {
		t.Errorf("KubeVirt alone: APIs %+v, want %+v", got, want)
	}
	r, verr := submit("cirros", "alone", 0)
	if verr != nil {
		t.Fatalf("a containerDisk VM was refused: %v", verr)
	}
	h.wait(r.ID, store.StateRunning, hasIP)
	refused("fedora", 0, "template", noCDISentence)
	refused("centos-stream9", 0, "template", noCloneSentence)
	refused("cirros", 2, "replicas", noPoolsSentence)
	// Submitted without asking the cluster (as before its APIs were
	// known): the provisioner fails it with the same sentence, creating
	// nothing.
	early := h.submit("fedora", "small", "early")
	if got := h.wait(early.ID, store.StateFailed, nil).StateReason; !strings.Contains(got, noCDISentence) {
		t.Errorf("fedora submitted without the check: %q", got)
	}
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Get(ctx, "early", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a VM was made for a template the cluster cannot run: %v", err)
	}
	if err := h.st.RequestAction(h.ctx, r.ID, store.ActionDelete, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateDeleted, nil)

	// KubeVirt + CDI: the running watcher starts watching DataVolumes.
	if err := env.InstallCRDs(ctx, kubetest.GroupCDI); err != nil {
		t.Fatal(err)
	}
	waitFor("the running watcher finds DataVolumes served", func() bool { return h.watcher.APIs().DataVolumes })
	since := time.Now()
	stray := &cdiv1.DataVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "stray-rootdisk", Namespace: ns, Labels: map[string]string{
			provision.LabelManagedBy: provision.ManagedByValue, provision.LabelRequest: "999999"}},
		Spec: cdiv1.DataVolumeSpec{Source: &cdiv1.DataVolumeSource{Blank: &cdiv1.DataVolumeBlankImage{}}},
	}
	if _, err := admin.CDI.CdiV1beta1().DataVolumes(ns).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the running watcher sees a DataVolume made after CDI was installed", func() bool {
		return len(h.warnings.about("kind", "DataVolume", since)) > 0
	})
	r, verr = submit("fedora", "imported", 0)
	if verr != nil {
		t.Fatalf("a DataVolume template refused once CDI is installed: %v", verr)
	}
	h.wait(r.ID, store.StateRunning, hasIP)
	refused("cirros", 2, "replicas", noPoolsSentence)
	if got, want := freshWatcher().APIs(), (provision.APIs{Known: true, DataVolumes: true}); got != want {
		t.Errorf("KubeVirt + CDI: APIs %+v, want %+v", got, want)
	}

	// KubeVirt + CDI + pools: the running watcher starts watching pools.
	if err := env.InstallCRDs(ctx, kubetest.GroupPools); err != nil {
		t.Fatal(err)
	}
	waitFor("the running watcher finds pools served", func() bool { return h.watcher.APIs().Pools })
	since = time.Now()
	strayPool, err := provision.RenderPool(specs["cirros"], store.Request{ID: 999998, TeamName: "payments", Namespace: ns,
		RequesterLogin: "dev", TemplateName: "cirros", TemplateVersion: 1, Size: specs["cirros"].Sizes[0].Name, Name: "stray",
		SSHPublicKey: sshKey})
	if err != nil {
		t.Fatal(err)
	}
	zero := int32(0)
	strayPool.Spec.Replicas = &zero
	if _, err := admin.Virt.PoolV1beta1().VirtualMachinePools(ns).Create(ctx, strayPool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the running watcher sees a pool made after the pool API was installed", func() bool {
		return len(h.warnings.about("kind", "VirtualMachinePool", since)) > 0
	})
	stopSim()
	simCtx, stopSim = context.WithCancel(hctx)
	defer stopSim()
	startSim()
	r, verr = submit("cirros", "pool", 2)
	if verr != nil {
		t.Fatalf("a pool refused once the pool API is installed: %v", verr)
	}
	h.wait(r.ID, store.StateRunning, poolReady(2))
	w := freshWatcher()
	if got := w.APIs(); got != provision.AllAPIs {
		t.Errorf("KubeVirt + CDI + pools: APIs %+v, want %+v", got, provision.AllAPIs)
	}
	if lacks := w.Lacks(specs["fedora"], true); lacks != nil {
		t.Errorf("everything installed, yet a fedora pool lacks %v", lacks)
	}
}

// TestKubeClusterWithoutCDIOnRealVirtControllerWithNodeAndImporterStandIns
// runs the provisioner on a cluster of its own with KubeVirt v1.8.0's own
// virt-controller and kube-controller-manager but no CDI DataVolume API, as
// on the many KubeVirt clusters with containerDisk images only, then
// installs CDI's CRDs while everything runs. KubeVirt v1.8 always serves
// the pool API, so a cluster without pools is an older KubeVirt, which
// virt-controller v1.8 cannot play: that combination is tested with the
// Simulator above. Stood in for: kubelet and virt-handler, and CDI's import
// (kubetest.StandInCDIImporter).
//
// Without CDI the watcher syncs with the informers that can work; a
// containerDisk VM and a pool run on KubeVirt's controllers; templates that
// import or clone a disk are refused naming CDI, and one submitted without
// that check fails with the same sentence and creates nothing. Once CDI's
// CRDs are installed, virt-controller exits on purpose and is started
// again with its DataVolume informers, the running watcher starts watching
// DataVolumes, and an import template runs: virt-controller makes the
// DataVolume, the import stand-in finishes it, KubeVirt starts the VM.
func TestKubeClusterWithoutCDIOnRealVirtControllerWithNodeAndImporterStandIns(t *testing.T) {
	ctx := context.Background()
	env, admin, cluster := ownCluster(t, kubetest.Controllers(), kubetest.WithoutCDI())
	hctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ns := controllersNamespace(t, hctx, env, admin, "nocdi")
	st := store.New(testdb.New(t))
	h := startHarnessConfigured(t, hctx, st, cluster, ns, ns, func(w *provision.Watcher) {
		w.Discovery = 200 * time.Millisecond
	})
	h.limit = 2 * time.Minute
	specs := specsByName(t)
	submit := func(template, name string, replicas int) (store.Request, *store.ValidationError) {
		t.Helper()
		return submitAskingTheCluster(t, h, specs[template], name, replicas)
	}
	refused := func(template string, want string) {
		t.Helper()
		_, verr := submit(template, "refused", 0)
		if got := verr.For("template"); !strings.Contains(got, want) {
			t.Errorf("%s: %q (all: %v), want %q", template, got, verr, want)
		}
	}

	// KubeVirt v1.8 without CDI.
	waitFor(t, 30*time.Second, "the watcher syncs without DataVolumes", func() error {
		if !h.watcher.Synced() {
			return errors.New("not synced")
		}
		return nil
	})
	if got, want := h.watcher.APIs(), (provision.APIs{Known: true, Pools: true}); got != want {
		t.Errorf("KubeVirt without CDI: APIs %+v, want %+v", got, want)
	}
	vm, verr := submit("cirros", "alone", 0)
	if verr != nil {
		t.Fatalf("a containerDisk VM was refused: %v", verr)
	}
	pool, verr := submit("cirros", "workers", 2)
	if verr != nil {
		t.Fatalf("a pool was refused: %v", verr)
	}
	h.wait(vm.ID, store.StateRunning, hasIP)
	h.wait(pool.ID, store.StateRunning, poolReady(2))
	refused("fedora", noCDISentence)
	refused("centos-stream9", noCloneSentence)
	early := h.submit("fedora", "small", "early")
	if got := h.wait(early.ID, store.StateFailed, nil).StateReason; !strings.Contains(got, noCDISentence) {
		t.Errorf("fedora submitted without the check: %q", got)
	}
	if _, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Get(ctx, "early", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a VM was made for a template the cluster cannot run: %v", err)
	}

	// + CDI: virt-controller restarts with its DataVolume informers; the
	// running watcher watches DataVolumes.
	starts := env.VirtControllerStarts()
	if err := env.InstallCRDs(ctx, kubetest.GroupCDI); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the running watcher finds DataVolumes served", func() error {
		if !h.watcher.APIs().DataVolumes {
			return errors.New("not yet")
		}
		return nil
	})
	waitFor(t, 2*time.Minute, "virt-controller started again once the DataVolume API is there", func() error {
		if got := env.VirtControllerStarts(); got <= starts {
			return errors.New("not restarted yet")
		}
		return nil
	})
	r, verr := submit("fedora", "imported", 0)
	if verr != nil {
		t.Fatalf("a DataVolume template refused once CDI is installed: %v", verr)
	}
	dvName := provision.DataVolumeName("imported")
	waitFor(t, 2*time.Minute, "virt-controller's DataVolume for the root disk", func() error {
		_, err := admin.CDI.CdiV1beta1().DataVolumes(ns).Get(ctx, dvName, metav1.GetOptions{})
		return err
	})
	importer := &kubetest.StandInCDIImporter{Client: admin.CDI, Kube: admin.Kube}
	if err := importer.ImportSucceeded(ctx, ns, dvName); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateRunning, hasIP)
	if got := env.VirtControllerStarts(); got != starts+1 {
		t.Logf("virt-controller started %d times (%d before CDI)", got, starts)
	}
	// The early fedora request is the one warned about.
	noWarnings(t, h, "provisioning failed for good: the cluster lacks an API")
}

// The sentences a request for a template the cluster cannot run is
// refused with.
const (
	noCDISentence   = "This cluster has no CDI (Containerized Data Importer), which template fedora needs to import its disk"
	noCloneSentence = "This cluster has no CDI (Containerized Data Importer), which template centos-stream9 needs to clone its disk"
	noPoolsSentence = "This cluster has no VirtualMachinePool API"
)

// specsByName are the shipped templates by name.
func specsByName(t *testing.T) map[string]store.TemplateSpec {
	t.Helper()
	all, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]store.TemplateSpec{}
	for _, s := range all {
		specs[s.Name] = s
	}
	return specs
}

// submitAskingTheCluster submits a request for spec (its first size) as
// the form and the API do, asking the harness's watcher which APIs the
// cluster lacks, and returns the refusal when there is one.
func submitAskingTheCluster(t *testing.T, h *harness, spec store.TemplateSpec, name string, replicas int) (store.Request, *store.ValidationError) {
	t.Helper()
	r, err := h.st.SubmitRequest(h.ctx, store.NewRequest{TeamID: h.team.ID, Requester: h.dev, Template: spec.Name,
		Size: spec.Sizes[0].Name, Name: name, SSHPublicKey: sshKey, LeaseDays: 3, Replicas: replicas,
		ClusterLacks: h.watcher.Lacks})
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		return r, verr
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, nil
}

// ownCluster starts a test cluster of the test's own with opts, with
// Paddock's RBAC for the provisioner's test user (its audit log kept for
// the RBAC check), and returns it with an administrator's client and the
// provisioner's. The test is marked parallel but holds kubeMu: one
// real-cluster test at a time, as the machine's cores are shared.
func ownCluster(t *testing.T, opts ...kubetest.Option) (env *kubetest.Env, admin, provisioner *provision.Cluster) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver (run without -short)")
	}
	t.Parallel()
	kubeMu.Lock()
	t.Cleanup(kubeMu.Unlock)
	ctx := context.Background()
	env, err := kubetest.Start(ctx, opts...)
	if err != nil {
		t.Fatalf("test cluster: %v", err)
	}
	stopKeepingAudit(t, env)
	if err := env.ApplyPaddockRBAC(ctx, provisionerUser); err != nil {
		t.Fatal(err)
	}
	if admin, err = provision.NewKubernetesCluster(env.Config); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.ConfigFor(provisionerUser)
	if err != nil {
		t.Fatal(err)
	}
	if provisioner, err = provision.NewKubernetesCluster(cfg); err != nil {
		t.Fatal(err)
	}
	provisioner.Timeout = 3 * time.Second
	return env, admin, provisioner
}
