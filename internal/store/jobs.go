package store

import "github.com/riverqueue/river"

// ProvisionJob asks the provisioner to create the VirtualMachine of an
// approved request. It is enqueued in the same transaction that approves the
// request, so approval and work are never separated by a crash.
type ProvisionJob struct {
	RequestID int64 `json:"request_id"`
}

// Kind implements river.JobArgs.
func (ProvisionJob) Kind() string { return "provision" }

// InsertOpts makes a second enqueue for the same request a no-op.
func (ProvisionJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 50, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// ActionJob carries out a day-2 action on a request's VM. Start, stop and
// delete apply the request's desired state as it is when the job runs, so a
// burst of clicks converges on the last one.
type ActionJob struct {
	RequestID int64  `json:"request_id"`
	Action    Action `json:"action"`
}

// Kind implements river.JobArgs.
func (ActionJob) Kind() string { return "vm_action" }

// InsertOpts retries actions for a while; the cluster may be briefly away.
func (ActionJob) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 25} }

// Action is a day-2 operation on a VM.
type Action string

// The actions an owner can take.
const (
	ActionStart   Action = "start"
	ActionStop    Action = "stop"
	ActionRestart Action = "restart"
	ActionDelete  Action = "delete"
)
