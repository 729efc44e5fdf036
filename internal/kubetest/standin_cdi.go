package kubetest

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"kubevirt.io/client-go/containerizeddataimporter"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// StandInCDIImporter stands in for CDI's import of a DataVolume, which no
// test machine runs (CDI's DataVolume and import controllers, the storage
// behind the PVC and the importer pod), where a test needs an import to
// finish or to go wrong. It writes what CDI's DataVolume controller writes
// from what its import controller saw of the importer pod (CDI v1.64.0,
// pkg/controller/datavolume: updateStatusPhase, updateConditions): the
// DataVolume's status and, for a finished import, the PVC CDI made for it.
// No pod, no data. A DataVolume no test writes to stays as virt-controller
// created it, with no status.
type StandInCDIImporter struct {
	// Client talks to the API server (an administrator).
	Client containerizeddataimporter.Interface
	// Kube talks to the API server (an administrator); needed only by
	// ImportSucceeded, which makes the PVC.
	Kube kubernetes.Interface
}

// ImportSucceeded writes what CDI leaves behind once the importer pod has
// written the image into the volume: the PVC, named as the DataVolume and
// controlled by it (so that the garbage collector deletes it with the
// DataVolume), of the size the DataVolume asks for, Bound; and the
// DataVolume Succeeded at 100.0%, its Bound and Ready conditions True and
// Running False with reason Completed. virt-controller then finds the
// volume ready (pkg/storage/types: VolumeReadyToAttachToNode) and starts
// the VM's instance.
func (s *StandInCDIImporter) ImportSucceeded(ctx context.Context, namespace, name string) error {
	dv, err := s.Client.CdiV1beta1().DataVolumes(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kubetest: CDI importer stand-in: DataVolume %s/%s: %w", namespace, name, err)
	}
	size := resource.MustParse("1Gi")
	if dv.Spec.Storage != nil {
		if q, ok := dv.Spec.Storage.Resources.Requests[corev1.ResourceStorage]; ok {
			size = q
		}
	} else if dv.Spec.PVC != nil {
		if q, ok := dv.Spec.PVC.Resources.Requests[corev1.ResourceStorage]; ok {
			size = q
		}
	}
	filesystem := corev1.PersistentVolumeFilesystem
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels:          map[string]string{"app": "containerized-data-importer"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(dv, cdiv1.SchemeGroupVersion.WithKind("DataVolume"))},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			VolumeMode:  &filesystem,
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	pvcs := s.Kube.CoreV1().PersistentVolumeClaims(namespace)
	made, err := pvcs.Create(ctx, pvc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		made, err = pvcs.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("kubetest: CDI importer stand-in: PVC %s/%s: %w", namespace, name, err)
	}
	made.Status.Phase = corev1.ClaimBound
	made.Status.AccessModes = made.Spec.AccessModes
	made.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: size}
	if _, err := pvcs.UpdateStatus(ctx, made, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kubetest: CDI importer stand-in: PVC %s/%s bound: %w", namespace, name, err)
	}
	return s.write(ctx, namespace, name, func(dv *cdiv1.DataVolume) {
		now := metav1.Now()
		dv.Status.Phase = cdiv1.Succeeded
		dv.Status.Progress = "100.0%"
		dv.Status.Conditions = []cdiv1.DataVolumeCondition{
			{Type: cdiv1.DataVolumeBound, Status: corev1.ConditionTrue, Reason: "Bound",
				Message: fmt.Sprintf("PVC %s Bound", dv.Name), LastTransitionTime: now, LastHeartbeatTime: now},
			{Type: cdiv1.DataVolumeReady, Status: corev1.ConditionTrue, LastTransitionTime: now, LastHeartbeatTime: now},
			{Type: cdiv1.DataVolumeRunning, Status: corev1.ConditionFalse, Reason: "Completed",
				Message: "Import Complete", LastTransitionTime: now, LastHeartbeatTime: now},
		}
	})
}

// ImporterKeepsFailing writes the status CDI gives a DataVolume whose
// importer pod exits with an error, is restarted by kubelet and fails again
// (an image URL that answers 404, a registry that refuses the image): the
// importer's pod is Running, between restarts, so the phase is
// ImportInProgress with no progress known; the PVC is bound; the Running
// condition is False with the reason of the container's last termination,
// "Error", and the importer's termination message, message; restarts
// counts the pod's restarts.
func (s *StandInCDIImporter) ImporterKeepsFailing(ctx context.Context, namespace, name, message string, restarts int32) error {
	return s.write(ctx, namespace, name, func(dv *cdiv1.DataVolume) {
		dv.Status.Phase = cdiv1.ImportInProgress
		dv.Status.Progress = "N/A"
		dv.Status.RestartCount = restarts
		dv.Status.Conditions = importConditions(dv, corev1.ConditionFalse, "Error", message)
	})
}

// ImporterUnschedulable writes the status CDI gives a DataVolume whose
// importer pod no node can run: the pod is Pending, so the phase is
// ImportScheduled; the PVC is bound; the Running condition is False,
// reason Unschedulable, "Importer pod cannot be scheduled". The import
// never starts, and nothing in it is an error to KubeVirt.
func (s *StandInCDIImporter) ImporterUnschedulable(ctx context.Context, namespace, name string) error {
	return s.write(ctx, namespace, name, func(dv *cdiv1.DataVolume) {
		dv.Status.Phase = cdiv1.ImportScheduled
		dv.Status.Progress = "N/A"
		dv.Status.Conditions = importConditions(dv, corev1.ConditionFalse, "Unschedulable", "Importer pod cannot be scheduled")
	})
}

// importConditions are CDI's three DataVolume conditions for an import not
// done: Bound (the PVC, named as the DataVolume, is bound), Ready False
// (no reason: it is set from the phase), Running as given.
func importConditions(dv *cdiv1.DataVolume, running corev1.ConditionStatus, reason, message string) []cdiv1.DataVolumeCondition {
	now := metav1.Now()
	return []cdiv1.DataVolumeCondition{
		{Type: cdiv1.DataVolumeBound, Status: corev1.ConditionTrue, Reason: "Bound",
			Message: fmt.Sprintf("PVC %s Bound", dv.Name), LastTransitionTime: now, LastHeartbeatTime: now},
		{Type: cdiv1.DataVolumeReady, Status: corev1.ConditionFalse, LastTransitionTime: now, LastHeartbeatTime: now},
		{Type: cdiv1.DataVolumeRunning, Status: running, Reason: reason, Message: message, LastTransitionTime: now, LastHeartbeatTime: now},
	}
}

// write sets the status of DataVolume namespace/name through its status
// subresource, retrying when another writer got there first.
func (s *StandInCDIImporter) write(ctx context.Context, namespace, name string, set func(*cdiv1.DataVolume)) error {
	dvs := s.Client.CdiV1beta1().DataVolumes(namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		dv, err := dvs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		set(dv)
		dv.Status.ClaimName = dv.Name
		_, err = dvs.UpdateStatus(ctx, dv, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("kubetest: CDI importer stand-in: DataVolume %s/%s: %w", namespace, name, err)
	}
	return nil
}
