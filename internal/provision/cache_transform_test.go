package provision

import (
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	virtv1 "kubevirt.io/api/core/v1"
	poolv1 "kubevirt.io/api/pool/v1beta1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// fullVM is a VM as the API server returns it, with the parts Paddock never
// reads (template, annotations, managed fields) filled in.
func fullVM(status virtv1.VirtualMachinePrintableStatus, strategy virtv1.VirtualMachineRunStrategy, conds ...virtv1.VirtualMachineCondition) *virtv1.VirtualMachine {
	now := metav1.Now()
	pool := &poolv1.VirtualMachinePool{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "payments", UID: "pool-uid"}}
	return &virtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{Kind: "VirtualMachine", APIVersion: "kubevirt.io/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-0", Namespace: "payments", UID: "vm-uid", ResourceVersion: "42", Generation: 3, CreationTimestamp: now,
			Labels:          map[string]string{LabelRequest: "7", LabelPool: "web", LabelManagedBy: ManagedByValue},
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{…a whole manifest…}"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(pool, poolv1.SchemeGroupVersion.WithKind("VirtualMachinePool"))},
			Finalizers:      []string{"kubevirt.io/virtualMachineControllerFinalize"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "paddock", Operation: metav1.ManagedFieldsOperationApply}},
		},
		Spec: virtv1.VirtualMachineSpec{
			RunStrategy: &strategy,
			Template: &virtv1.VirtualMachineInstanceTemplateSpec{Spec: virtv1.VirtualMachineInstanceSpec{
				Volumes: []virtv1.Volume{{Name: "cloudinit", VolumeSource: virtv1.VolumeSource{
					CloudInitNoCloud: &virtv1.CloudInitNoCloudSource{UserData: "#cloud-config\npackages: [htop]\n"}}}},
			}},
			DataVolumeTemplates: []virtv1.DataVolumeTemplateSpec{{ObjectMeta: metav1.ObjectMeta{Name: "web-rootdisk"}}},
		},
		Status: virtv1.VirtualMachineStatus{
			PrintableStatus: status, Ready: status == virtv1.VirtualMachineStatusRunning, Created: true, Conditions: conds,
			VolumeSnapshotStatuses: []virtv1.VolumeSnapshotStatus{{Name: "rootdisk", Enabled: true}},
		},
	}
}

func fullVMI(vm *virtv1.VirtualMachine, ip string) *virtv1.VirtualMachineInstance {
	return &virtv1.VirtualMachineInstance{
		TypeMeta: metav1.TypeMeta{Kind: "VirtualMachineInstance", APIVersion: "kubevirt.io/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: vm.Name, Namespace: vm.Namespace, UID: "vmi-uid", ResourceVersion: "43", Labels: vm.Labels,
			Annotations:     map[string]string{"kubevirt.io/latest-observed-api-version": "v1"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vm, virtv1.VirtualMachineGroupVersionKind)},
		},
		Spec: virtv1.VirtualMachineInstanceSpec{Domain: virtv1.DomainSpec{Devices: virtv1.Devices{
			Disks: []virtv1.Disk{{Name: "rootdisk"}}}}},
		Status: virtv1.VirtualMachineInstanceStatus{
			Phase:      virtv1.Running,
			Interfaces: []virtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", IP: ip, IPs: []string{ip}, MAC: "02:00:00:00:00:01", InfoSource: "domain, guest-agent"}},
			Conditions: []virtv1.VirtualMachineInstanceCondition{{Type: virtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue}},
			NodeName:   "node-1",
		},
	}
}

func slim[T runtime.Object](obj T) T { return slimObject(obj).(T) }

// TestCacheTransformsKeepWhatTheWatcherReads runs VMs and instances in the
// situations the watcher tells apart through the transforms: what the
// watcher concludes from the kept fields (Observe, ObservePool, ownership,
// the request and pool labels and indexes, resource versions) is what it
// concludes from the whole objects, and the bulky parts are gone.
func TestCacheTransformsKeepWhatTheWatcherReads(t *testing.T) {
	t.Parallel()
	failed := virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachineFailure, Status: corev1.ConditionTrue, Message: "no node fits"}
	paused := virtv1.VirtualMachineCondition{Type: virtv1.VirtualMachinePaused, Status: corev1.ConditionFalse, Reason: "x", Message: "paused by the user"}
	dv := &cdiv1.DataVolume{Status: cdiv1.DataVolumeStatus{Phase: cdiv1.ImportInProgress, Progress: "37.5%"}}
	deleting := fullVM(virtv1.VirtualMachineStatusTerminating, virtv1.RunStrategyAlways)
	deleting.DeletionTimestamp = &metav1.Time{Time: deleting.CreationTimestamp.Time}
	deleting.Finalizers = nil
	for _, c := range []struct {
		name string
		vm   *virtv1.VirtualMachine
		ip   string
	}{
		{"running with an address", fullVM(virtv1.VirtualMachineStatusRunning, virtv1.RunStrategyAlways), "10.1.2.3"},
		{"running without one", fullVM(virtv1.VirtualMachineStatusRunning, virtv1.RunStrategyAlways), ""},
		{"failure condition", fullVM(virtv1.VirtualMachineStatusProvisioning, virtv1.RunStrategyAlways, failed), ""},
		{"unschedulable with a message", fullVM(virtv1.VirtualMachineStatusUnschedulable, virtv1.RunStrategyAlways, paused), ""},
		{"halted", fullVM(virtv1.VirtualMachineStatusProvisioning, virtv1.RunStrategyHalted), ""},
		{"being deleted", deleting, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			vmi := fullVMI(c.vm, c.ip)
			svm, svmi := slim(c.vm), slim(vmi)
			if got, want := Observe(svm, svmi, dv), Observe(c.vm, vmi, dv); !reflect.DeepEqual(got, want) {
				t.Errorf("Observe on the cache's objects:\n got %+v\nwant %+v", got, want)
			}
			pool := &poolv1.VirtualMachinePool{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "payments", UID: "pool-uid"}}
			one := int32(1)
			pool.Spec.Replicas = &one
			gotPool := ObservePool(pool, []*virtv1.VirtualMachine{svm}, func(string) *virtv1.VirtualMachineInstance { return svmi },
				func(string) *cdiv1.DataVolume { return dv })
			wantPool := ObservePool(pool, []*virtv1.VirtualMachine{c.vm}, func(string) *virtv1.VirtualMachineInstance { return vmi },
				func(string) *cdiv1.DataVolume { return dv })
			if !reflect.DeepEqual(gotPool, wantPool) {
				t.Errorf("ObservePool on the cache's objects:\n got %+v\nwant %+v", gotPool, wantPool)
			}
			if !metav1.IsControlledBy(svmi, svm) || !metav1.IsControlledBy(svm, pool) {
				t.Error("the cache's objects lost their controller references")
			}
			for _, o := range []struct{ full, slim metav1.Object }{{c.vm, svm}, {vmi, svmi}} {
				if o.slim.GetUID() != o.full.GetUID() || o.slim.GetResourceVersion() != o.full.GetResourceVersion() ||
					!reflect.DeepEqual(o.slim.GetLabels(), o.full.GetLabels()) || o.slim.GetName() != o.full.GetName() ||
					o.slim.GetNamespace() != o.full.GetNamespace() || !reflect.DeepEqual(o.slim.GetFinalizers(), o.full.GetFinalizers()) ||
					o.slim.GetDeletionTimestamp() != o.full.GetDeletionTimestamp() || o.slim.GetCreationTimestamp() != o.full.GetCreationTimestamp() {
					t.Errorf("identity of %s changed: %+v", o.full.GetName(), o.slim)
				}
				gotIdx, _ := poolIndexFunc(o.slim)
				wantIdx, _ := poolIndexFunc(o.full)
				if !reflect.DeepEqual(gotIdx, wantIdx) || len(gotIdx) != 1 {
					t.Errorf("pool index %v, want %v", gotIdx, wantIdx)
				}
				key, err := cache.MetaNamespaceKeyFunc(o.slim)
				if err != nil || key != "payments/web-0" {
					t.Errorf("cache key %q, %v", key, err)
				}
			}
			if svm.Spec.Template != nil || svm.Spec.DataVolumeTemplates != nil || svm.Annotations != nil || svm.ManagedFields != nil ||
				svm.Status.VolumeSnapshotStatuses != nil {
				t.Errorf("the cached VM keeps parts the watcher never reads: %+v", svm)
			}
			if len(svmi.Spec.Domain.Devices.Disks) != 0 || svmi.Annotations != nil || svmi.Status.Conditions != nil || svmi.Status.NodeName != "" {
				t.Errorf("the cached instance keeps parts the watcher never reads: %+v", svmi)
			}
			// Slimming a slim object changes nothing.
			if again := slim(svm); !reflect.DeepEqual(again, svm) {
				t.Errorf("slimming a cached VM again changed it")
			}
			if again := slim(svmi); !reflect.DeepEqual(again, svmi) {
				t.Errorf("slimming a cached instance again changed it")
			}
		})
	}
}

// TestSlimWatchSlimsEveryEvent: the watcher's watches hand its informers
// slim VMs and instances, in every kind of event, and pass a watch's error
// as it is. The events come from client-go's fake watch, not an API server
// (TestKubeWatcher… run the informers on the real one).
func TestSlimWatchSlimsEveryEvent(t *testing.T) {
	t.Parallel()
	vm := fullVM(virtv1.VirtualMachineStatusRunning, virtv1.RunStrategyAlways)
	vmi := fullVMI(vm, "10.1.2.3")
	gone := &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonGone, Message: "too old resource version"}
	fake := watch.NewFakeWithChanSize(5, false)
	fake.Add(vm)
	fake.Modify(vmi)
	fake.Delete(vm)
	fake.Action(watch.Bookmark, &virtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "42"}})
	fake.Error(gone)
	w, err := slimWatch(fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	want := []watch.Event{
		{Type: watch.Added, Object: slimVMObject(vm)},
		{Type: watch.Modified, Object: slimVMIObject(vmi)},
		{Type: watch.Deleted, Object: slimVMObject(vm)},
		{Type: watch.Bookmark, Object: &virtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "42"}}},
		{Type: watch.Error, Object: gone},
	}
	for i, w8 := range want {
		got := <-w.ResultChan()
		if !reflect.DeepEqual(got, w8) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, w8)
		}
	}
	if _, err := slimWatch(nil, errors.New("refused")); err == nil {
		t.Error("a watch that could not start gave no error")
	}
}
