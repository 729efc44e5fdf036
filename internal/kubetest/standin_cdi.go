package kubetest

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"kubevirt.io/client-go/containerizeddataimporter"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

// StandInCDIImporter stands in for CDI's import of a DataVolume, which no
// test machine runs (CDI's DataVolume and import controllers, the PVC and
// the importer pod), where a test needs the import to go wrong. It only
// writes the DataVolume's status, as CDI's DataVolume controller writes it
// from what its import controller saw of the importer pod (CDI v1.64.0,
// pkg/controller/datavolume: updateStatusPhase, updateConditions): no PVC,
// no pod, no data. A DataVolume no test writes to stays as virt-controller
// created it, with no status.
type StandInCDIImporter struct {
	// Client talks to the API server (an administrator).
	Client containerizeddataimporter.Interface
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
