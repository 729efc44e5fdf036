package provision_test

import (
	"reflect"
	"testing"

	"paddock/internal/provision"
	"paddock/internal/store"
)

// TestPlanRolloutStep is the batch logic alone, case by case; the store's
// rollout tests run it through StepRollout on a real PostgreSQL.
func TestPlanRolloutStep(t *testing.T) {
	item := func(id int64, batch int, state string, req store.State, version int) store.RolloutStepItem {
		return store.RolloutStepItem{RequestID: id, Name: "vm", Owner: "dev", Batch: batch, State: state,
			Request: req, Desired: store.DesiredRunning, Version: version}
	}
	pet := item(6, 2, store.ItemPending, store.StateRunning, 1)
	pet.Pet = true
	gone := item(7, 2, store.ItemPending, store.StateRunning, 1)
	gone.Desired = store.DesiredDeleted
	failed := item(2, 1, store.ItemRebuilding, store.StateFailed, 2)
	failed.Reason = "ErrImagePull"
	failed2 := item(11, 1, store.ItemRebuilding, store.StateFailed, 2)
	retried := item(8, 2, store.ItemPending, store.StateRunning, 2)
	retried.Attempts = 1

	for _, tc := range []struct {
		name  string
		items []store.RolloutStepItem
		want  store.RolloutStep
	}{{
		name:  "a VM of the batch still being rebuilt: wait, settling the others",
		items: []store.RolloutStepItem{item(1, 1, store.ItemRebuilding, store.StateRunning, 2), item(2, 1, store.ItemRebuilding, store.StateProvisioning, 2), item(3, 2, store.ItemPending, store.StateRunning, 1)},
		want:  store.RolloutStep{Settle: []store.RolloutOutcome{{RequestID: 1, State: store.ItemDone}}, Did: "waiting"},
	}, {
		name:  "a failure waits for the rest of its batch",
		items: []store.RolloutStepItem{failed, item(3, 1, store.ItemRebuilding, store.StateProvisioning, 2)},
		want:  store.RolloutStep{Did: "waiting"},
	}, {
		name:  "once the batch has settled, a failure pauses with the VM, its owner and the reason",
		items: []store.RolloutStepItem{failed, item(3, 1, store.ItemRebuilding, store.StateRunning, 2), failed2},
		want: store.RolloutStep{Settle: []store.RolloutOutcome{{RequestID: 3, State: store.ItemDone},
			{RequestID: 2, State: store.ItemFailed, Reason: "ErrImagePull"}, {RequestID: 11, State: store.ItemFailed, Reason: "the VM failed"}},
			Pause: "Paused: vm (request #2, owner dev): ErrImagePull; vm (request #11, owner dev): the VM failed. Fix the cause, then resume: failed VMs are rebuilt again.",
			Did:   "paused on failure"},
	}, {
		name:  "the next batch starts, lowest first; pets, deleted, current and arriving VMs are not rebuilt",
		items: []store.RolloutStepItem{item(9, 3, store.ItemPending, store.StateRunning, 1), pet, gone, item(5, 2, store.ItemPending, store.StateRunning, 2), item(4, 2, store.ItemPending, store.StateApproved, 1), retried, item(10, 2, store.ItemPending, store.StateStopped, 1)},
		want: store.RolloutStep{Settle: []store.RolloutOutcome{
			{RequestID: 6, State: store.ItemSkipped, Reason: "marked as a pet by dev before its batch"},
			{RequestID: 7, State: store.ItemSkipped, Reason: "deleted before its batch"},
			{RequestID: 5, State: store.ItemSkipped, Reason: "already on v2"},
		}, Batch: 2, Rebuild: []int64{8, 10}, Did: "batch 2 of 3"},
	}, {
		name:  "nothing pending: complete",
		items: []store.RolloutStepItem{item(1, 1, store.ItemRebuilding, store.StateStopped, 2)},
		want:  store.RolloutStep{Settle: []store.RolloutOutcome{{RequestID: 1, State: store.ItemDone}}, Complete: true, Did: "completed"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := provision.PlanRolloutStep(store.RolloutView{Target: 2, Batches: 3, Items: tc.items})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
