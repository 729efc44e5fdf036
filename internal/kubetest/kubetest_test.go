package kubetest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	poolv1beta1 "kubevirt.io/api/pool/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The tests share one environment, and one user bound only to deploy/rbac.yaml.
var (
	env       *Env
	scheme    = runtime.NewScheme()
	admin     client.Client
	paddock   client.Client // the RBAC-bound user
	testNS    string        // created by the RBAC-bound user
	startTook time.Duration
)

const paddockUser = "paddock-test"

func TestMain(m *testing.M) {
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme,
		kubevirtv1.AddToScheme, instancetypev1beta1.AddToScheme, poolv1beta1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	flag.Parse()
	if testing.Short() {
		// Only the tests that need no API server run; the others skip
		// themselves (needsCluster).
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

// needsCluster skips t under -short, where TestMain starts no API server.
func needsCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver (run without -short)")
	}
}

func run(m *testing.M) int {
	ctx := context.Background()
	start := time.Now()
	var err error
	env, err = Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop:", err)
		}
		if err := stopControllersEnv(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the Controllers environment:", err)
		}
	}()
	startTook = time.Since(start)

	if admin, err = client.New(env.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := env.ApplyPaddockRBAC(ctx, paddockUser); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := env.ConfigFor(paddockUser)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if paddock, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Creating namespaces is not Paddock's by default: the admin makes the test's own.
	testNS = "kubetest-" + fmt.Sprint(time.Now().UnixNano())
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}}); err != nil {
		fmt.Fprintln(os.Stderr, "create namespace:", err)
		return 1
	}
	return m.Run()
}

// startBudget bounds Start: about 8 s on an idle 2-core machine
// (tools/kube/README.md), well under the timeouts Start would otherwise wait
// out (3 minutes for the control plane, 2 for the CRDs), so a readiness wait
// that never succeeds fails here even when the machine is busy.
const startBudget = 60 * time.Second

func TestStartTime(t *testing.T) {
	needsCluster(t)
	t.Logf("Start took %v", startTook)
	if startTook <= 0 || startTook > startBudget {
		t.Errorf("Start took %v, want at most %v", startTook, startBudget)
	}
}

func TestCRDsEstablished(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	// CRD -> whether upstream declares a status subresource. KubeVirt declares
	// none for VirtualMachineInstances; CDI none for DataSources.
	want := map[string]bool{
		"virtualmachines.kubevirt.io":                                 true,
		"virtualmachineinstances.kubevirt.io":                         false,
		"virtualmachinepools.pool.kubevirt.io":                        true,
		"virtualmachineclusterinstancetypes.instancetype.kubevirt.io": false,
		"virtualmachineclusterpreferences.instancetype.kubevirt.io":   false,
		"virtualmachineinstancetypes.instancetype.kubevirt.io":        false,
		"virtualmachinepreferences.instancetype.kubevirt.io":          false,
		"datavolumes.cdi.kubevirt.io":                                 true,
		"datasources.cdi.kubevirt.io":                                 false,
	}
	for name, wantStatus := range want {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := admin.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !crdCondition(crd, apiextensionsv1.Established) {
			t.Errorf("%s not established: %+v", name, crd.Status.Conditions)
		}
		hasStatus := false
		for _, v := range crd.Spec.Versions {
			if v.Storage {
				hasStatus = v.Subresources != nil && v.Subresources.Status != nil
			}
		}
		if hasStatus != wantStatus {
			t.Errorf("%s: status subresource %v, want %v", name, hasStatus, wantStatus)
		}
	}
}

func TestCommonInstancetypesInstalled(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	its := &instancetypev1beta1.VirtualMachineClusterInstancetypeList{}
	if err := admin.List(ctx, its); err != nil {
		t.Fatal(err)
	}
	have := map[string]instancetypev1beta1.VirtualMachineClusterInstancetype{}
	for _, it := range its.Items {
		have[it.Name] = it
	}
	for name, want := range map[string]struct {
		cpu uint32
		mem string
	}{
		"u1.nano": {1, "512Mi"}, "u1.micro": {1, "1Gi"}, "u1.small": {1, "2Gi"}, "u1.medium": {1, "4Gi"},
		"u1.large": {2, "8Gi"}, "u1.xlarge": {4, "16Gi"}, "u1.2xlarge": {8, "32Gi"},
	} {
		it, ok := have[name]
		if !ok {
			t.Errorf("no VirtualMachineClusterInstancetype %s", name)
			continue
		}
		if it.Spec.CPU.Guest != want.cpu || it.Spec.Memory.Guest.Cmp(resource.MustParse(want.mem)) != 0 {
			t.Errorf("%s: cpu %d memory %s, want %d %s", name, it.Spec.CPU.Guest, it.Spec.Memory.Guest.String(), want.cpu, want.mem)
		}
	}
	prefs := &instancetypev1beta1.VirtualMachineClusterPreferenceList{}
	if err := admin.List(ctx, prefs); err != nil {
		t.Fatal(err)
	}
	havePref := map[string]bool{}
	for _, p := range prefs.Items {
		havePref[p.Name] = true
	}
	for _, name := range []string{"ubuntu", "fedora", "cirros", "centos.stream9", "rhel.9", "debian", "alpine"} {
		if !havePref[name] {
			t.Errorf("no VirtualMachineClusterPreference %s", name)
		}
	}
	t.Logf("%d cluster instancetypes, %d cluster preferences", len(its.Items), len(prefs.Items))
}

// newVM is a minimal valid VM: a containerDisk root disk, runStrategy Always.
func newVM(name string) *kubevirtv1.VirtualMachine {
	always := kubevirtv1.RunStrategyAlways
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: &always,
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					Domain: kubevirtv1.DomainSpec{
						Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{
							Name:       "root",
							DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}},
						}}},
						Resources: kubevirtv1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceMemory: resource.MustParse("128Mi"),
						}},
					},
					Volumes: []kubevirtv1.Volume{{
						Name: "root",
						VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{
							Image: "quay.io/containerdisks/fedora:latest",
						}},
					}},
				},
			},
		},
	}
}

func TestValidVMAcceptedAsPaddockUser(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	vm := newVM("valid")
	if err := paddock.Create(ctx, vm); err != nil {
		t.Fatalf("create a valid VM as %s: %v", paddockUser, err)
	}
	got := &kubevirtv1.VirtualMachine{}
	if err := paddock.Get(ctx, client.ObjectKeyFromObject(vm), got); err != nil {
		t.Fatal(err)
	}
	// KubeVirt's mutating webhook ran: it gives new VMs a firmware UUID.
	if fw := got.Spec.Template.Spec.Domain.Firmware; fw == nil || fw.UUID == "" {
		t.Errorf("VM not mutated by virtualmachines-mutator.kubevirt.io: firmware %+v", fw)
	}
	if got.Spec.RunStrategy == nil || *got.Spec.RunStrategy != kubevirtv1.RunStrategyAlways {
		t.Errorf("runStrategy = %v", got.Spec.RunStrategy)
	}
}

func TestVMWithInstancetypeAndPreferenceAccepted(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	vm := newVM("with-instancetype")
	vm.Spec.Template.Spec.Domain.Resources = kubevirtv1.ResourceRequirements{}
	vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Name: "u1.small", Kind: "VirtualMachineClusterInstancetype"}
	vm.Spec.Preference = &kubevirtv1.PreferenceMatcher{Name: "fedora", Kind: "VirtualMachineClusterPreference"}
	if err := paddock.Create(ctx, vm); err != nil {
		t.Fatalf("create a VM with instancetype u1.small and preference fedora: %v", err)
	}
}

// wantDenied checks err is the named KubeVirt webhook denying the request
// with a message containing want.
func wantDenied(t *testing.T, err error, webhook, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want %s to deny it", webhook)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", webhook)) {
		t.Fatalf("error %q is not a denial by %s", msg, webhook)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("denial %q does not mention %q", msg, want)
	}
	t.Logf("denied: %s", msg)
}

func TestVMDiskWithoutVolumeRejected(t *testing.T) {
	needsCluster(t)
	vm := newVM("disk-without-volume")
	vm.Spec.Template.Spec.Volumes[0].Name = "other"
	err := paddock.Create(context.Background(), vm)
	wantDenied(t, err, "virtualmachine-validator.kubevirt.io", "disks[0].Name 'root' not found")
}

func TestVMInstancetypeWithExplicitCPUAndMemoryRejected(t *testing.T) {
	needsCluster(t)
	vm := newVM("instancetype-conflict")
	vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Name: "u1.small", Kind: "VirtualMachineClusterInstancetype"}
	vm.Spec.Template.Spec.Domain.CPU = &kubevirtv1.CPU{Cores: 2}
	guest := resource.MustParse("2Gi")
	vm.Spec.Template.Spec.Domain.Memory = &kubevirtv1.Memory{Guest: &guest}
	err := paddock.Create(context.Background(), vm)
	wantDenied(t, err, "virtualmachine-validator.kubevirt.io", "conflicts with selected instance type")
}

func TestVMRunningWithRunStrategyRejected(t *testing.T) {
	needsCluster(t)
	vm := newVM("running-and-runstrategy")
	running := true
	vm.Spec.Running = &running //nolint:staticcheck // deprecated on purpose: KubeVirt must reject it here
	err := paddock.Create(context.Background(), vm)
	wantDenied(t, err, "virtualmachine-validator.kubevirt.io", "mutually exclusive")
}

func TestVMPoolValidated(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	replicas := int32(2)
	newPool := func(name string) *poolv1beta1.VirtualMachinePool {
		vm := newVM("ignored")
		return &poolv1beta1.VirtualMachinePool{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
			Spec: poolv1beta1.VirtualMachinePoolSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": name}},
				VirtualMachineTemplate: &poolv1beta1.VirtualMachineTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"pool": name}},
					Spec:       vm.Spec,
				},
			},
		}
	}
	// As the admin: this is about KubeVirt's validation, not Paddock's RBAC.
	pool := newPool("good")
	pool.Spec.VirtualMachineTemplate.Spec.Template.ObjectMeta.Labels = map[string]string{"pool": "good"}
	if err := admin.Create(ctx, pool); err != nil {
		t.Fatalf("create a valid VirtualMachinePool: %v", err)
	}
	bad := newPool("bad")
	bad.Spec.VirtualMachineTemplate.Spec.Template.Spec.Volumes[0].Name = "other"
	err := admin.Create(ctx, bad)
	wantDenied(t, err, "virtualmachinepool-validator.kubevirt.io", "disks[0].Name 'root' not found")
}

func TestPaddockUserIsLimitedToItsRBAC(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	if err := paddock.List(ctx, &corev1.SecretList{}, client.InNamespace(testNS)); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets: %v, want Forbidden", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: testNS},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := paddock.Create(ctx, pod); !apierrors.IsForbidden(err) {
		t.Errorf("create pod: %v, want Forbidden", err)
	}
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "vmi", Namespace: testNS}}
	if err := paddock.Create(ctx, vmi); !apierrors.IsForbidden(err) {
		t.Errorf("create VMI: %v, want Forbidden", err)
	}
	if err := paddock.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}}); !apierrors.IsForbidden(err) {
		t.Errorf("delete namespace: %v, want Forbidden", err)
	}
	// Creating one needs the optional deploy/rbac-create-namespaces.yaml.
	if err := paddock.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS + "-more"}}); !apierrors.IsForbidden(err) {
		t.Errorf("create namespace: %v, want Forbidden", err)
	}
	// What it may do.
	if err := paddock.List(ctx, &kubevirtv1.VirtualMachineInstanceList{}, client.InNamespace(testNS)); err != nil {
		t.Errorf("list VMIs: %v", err)
	}
	if err := paddock.List(ctx, &corev1.EventList{}, client.InNamespace(testNS)); err != nil {
		t.Errorf("list events: %v", err)
	}

	// The ServiceAccount itself, through the shipped ClusterRoleBinding.
	saCfg, err := env.ServiceAccountConfig("paddock", "paddock")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := client.New(saCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.List(ctx, &kubevirtv1.VirtualMachineList{}, client.InNamespace(testNS)); err != nil {
		t.Errorf("list VMs as the paddock ServiceAccount: %v", err)
	}
	if err := sa.List(ctx, &corev1.SecretList{}, client.InNamespace(testNS)); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets as the paddock ServiceAccount: %v, want Forbidden", err)
	}

	// A user with no bindings at all.
	nobodyCfg, err := env.ConfigFor("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := client.New(nobodyCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := nobody.List(ctx, &kubevirtv1.VirtualMachineList{}, client.InNamespace(testNS)); !apierrors.IsForbidden(err) {
		t.Errorf("list VMs as an unbound user: %v, want Forbidden", err)
	}
}

func TestUnauthenticatedRejected(t *testing.T) {
	needsCluster(t)
	cfg := rest.AnonymousClientConfig(env.Config)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	err = c.List(context.Background(), &kubevirtv1.VirtualMachineList{}, client.InNamespace(testNS))
	if !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
		t.Errorf("anonymous list VMs: %v, want Forbidden/Unauthorized", err)
	}
}

func TestVMIStatusWithoutSubresource(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	// Playing virt-controller: a VMI is created with its status in one go,
	// as the VMI CRD has no status subresource.
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "valid", Namespace: testNS},
		Spec:       newVM("valid").Spec.Template.Spec,
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase:    kubevirtv1.Running,
			NodeName: "node-1",
			Interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{{
				Name: "default", IP: "10.0.0.7", IPs: []string{"10.0.0.7"},
			}},
		},
	}
	if err := admin.Create(ctx, vmi); err != nil {
		t.Fatal(err)
	}
	got := &kubevirtv1.VirtualMachineInstance{}
	if err := paddock.Get(ctx, client.ObjectKeyFromObject(vmi), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != kubevirtv1.Running || got.Status.NodeName != "node-1" || len(got.Status.Interfaces) != 1 || got.Status.Interfaces[0].IP != "10.0.0.7" {
		t.Errorf("VMI status not stored with the object: %+v", got.Status)
	}
	// And the main resource updates it.
	got.Status.Phase = kubevirtv1.Succeeded
	if err := admin.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	again := &kubevirtv1.VirtualMachineInstance{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(vmi), again); err != nil {
		t.Fatal(err)
	}
	if again.Status.Phase != kubevirtv1.Succeeded {
		t.Errorf("VMI phase after update = %s, want Succeeded", again.Status.Phase)
	}
	// The Paddock user may delete VMIs (restart) but not write them.
	if err := paddock.Update(ctx, again); !apierrors.IsForbidden(err) {
		t.Errorf("update VMI as %s: %v, want Forbidden", paddockUser, err)
	}
	if err := paddock.Delete(ctx, again); err != nil {
		t.Errorf("delete VMI as %s: %v", paddockUser, err)
	}
}

func TestVMStatusSubresource(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	vm := newVM("status")
	if err := paddock.Create(ctx, vm); err != nil {
		t.Fatal(err)
	}
	// Status on the main resource is ignored...
	vm.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusRunning
	if err := admin.Update(ctx, vm); err != nil {
		t.Fatal(err)
	}
	got := &kubevirtv1.VirtualMachine{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(vm), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.PrintableStatus != "" {
		t.Errorf("status written through the main resource: %q", got.Status.PrintableStatus)
	}
	// ...and written through /status (by virt-controller, here the admin),
	// past KubeVirt's kubevirt-crd-status-validator webhook.
	got.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusRunning
	got.Status.Ready = true
	got.Status.Created = true
	if err := admin.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	final := &kubevirtv1.VirtualMachine{}
	if err := paddock.Get(ctx, client.ObjectKeyFromObject(vm), final); err != nil {
		t.Fatal(err)
	}
	if final.Status.PrintableStatus != kubevirtv1.VirtualMachineStatusRunning || !final.Status.Ready {
		t.Errorf("status after /status update: %+v", final.Status)
	}
	// The Paddock user has no rights on virtualmachines/status.
	final.Status.Ready = false
	if err := paddock.Status().Update(ctx, final); !apierrors.IsForbidden(err) {
		t.Errorf("update VM status as %s: %v, want Forbidden", paddockUser, err)
	}
}

func TestServerSideDryRunCreate(t *testing.T) {
	needsCluster(t)
	ctx := context.Background()
	vm := newVM("dry-run")
	if err := paddock.Create(ctx, vm, client.DryRunAll); err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	// The answer is the object as admitted: mutated by KubeVirt's webhook.
	if fw := vm.Spec.Template.Spec.Domain.Firmware; fw == nil || fw.UUID == "" {
		t.Errorf("dry-run result not mutated: firmware %+v", fw)
	}
	if err := paddock.Get(ctx, client.ObjectKeyFromObject(vm), &kubevirtv1.VirtualMachine{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after dry-run create: %v, want NotFound", err)
	}
	// And a dry run is still validated.
	bad := newVM("dry-run-bad")
	bad.Spec.Template.Spec.Volumes[0].Name = "other"
	err := paddock.Create(ctx, bad, client.DryRunAll)
	wantDenied(t, err, "virtualmachine-validator.kubevirt.io", "disks[0].Name 'root' not found")
}
