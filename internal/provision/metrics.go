package provision

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the provisioner's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	submitToApproved   prometheus.Histogram
	approvedToCreated  prometheus.Histogram
	createdToRunning   prometheus.Histogram
	provisionFailures  *prometheus.CounterVec
	informerSynced     prometheus.GaugeFunc
	observationsWriten prometheus.Counter
	jobFailures        *prometheus.CounterVec
	foreignObjects     *prometheus.CounterVec
}

var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}

// NewMetrics registers the provisioner's series on reg. watcher may be nil.
func NewMetrics(reg prometheus.Registerer, watcher *Watcher) *Metrics {
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "paddock", Name: name, Help: help, Buckets: durationBuckets})
	}
	m := &Metrics{
		submitToApproved:  h("submit_to_approved_seconds", "Time from a request's submission to its approval (by policy or a person)."),
		approvedToCreated: h("approved_to_vm_created_seconds", "Time from approval until the VirtualMachine exists in the cluster."),
		createdToRunning:  h("vm_created_to_running_seconds", "Time from the VirtualMachine's creation until the request is running."),
		provisionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "paddock", Name: "provision_errors_total",
			Help: "Provisioning attempts that failed, by kind: transient (retried) or permanent (request failed)."}, []string{"kind"}),
		jobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "paddock", Name: "job_failures_total",
			Help: "Background job attempts that returned an error (each is retried until its attempts run out), by job kind."}, []string{"kind"}),
		foreignObjects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "paddock", Name: "watch_foreign_objects_total",
			Help: "Objects carrying Paddock's labels that the watcher ignored because they are not the VM or pool recorded for the request (nor of it), by kind; counted each time one is looked at."}, []string{"kind"}),
		observationsWriten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "paddock", Name: "watcher_state_changes_total",
			Help: "Request state changes the watcher recorded from the cluster."}),
	}
	m.informerSynced = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "paddock", Name: "informers_synced",
		Help: "1 when the watcher's informers have completed their initial list."}, func() float64 {
		if watcher != nil && watcher.Synced() {
			return 1
		}
		return 0
	})
	reg.MustRegister(m.submitToApproved, m.approvedToCreated, m.createdToRunning, m.provisionFailures, m.informerSynced, m.observationsWriten, m.jobFailures, m.foreignObjects)
	return m
}

func (m *Metrics) provisioned(submitted, approved time.Time) {
	if m == nil {
		return
	}
	if approved.After(submitted) {
		m.submitToApproved.Observe(approved.Sub(submitted).Seconds())
	} else {
		m.submitToApproved.Observe(0)
	}
	m.approvedToCreated.Observe(time.Since(approved).Seconds())
}

func (m *Metrics) running(created time.Time) {
	if m == nil || created.IsZero() {
		return
	}
	m.createdToRunning.Observe(time.Since(created).Seconds())
}

func (m *Metrics) failed(kind string) {
	if m == nil {
		return
	}
	m.provisionFailures.WithLabelValues(kind).Inc()
}

func (m *Metrics) stateChanged() {
	if m == nil {
		return
	}
	m.observationsWriten.Inc()
}

// JobFailed counts a failed job attempt of kind.
func (m *Metrics) JobFailed(kind string) {
	if m == nil {
		return
	}
	m.jobFailures.WithLabelValues(kind).Inc()
}

func (m *Metrics) foreign(kind string) {
	if m == nil {
		return
	}
	m.foreignObjects.WithLabelValues(kind).Inc()
}
