package web

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"paddock/internal/store"
)

// metrics holds the HTTP series and the registry /metrics serves.
type metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, st *store.Store) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "paddock", Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.duration, &dbCollector{st: st})
	return m
}

// instrument records each request's latency under its route pattern (not
// its path, so ids don't explode the series) and a known method: anyone,
// signed in or not, chooses the method and path, and each new label value
// would be a new series kept for the life of the process.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if route == "/requests/{id}/stream" || route == "/requests/{id}/console/{kind}/ws" {
			return // long-lived streams would skew the latency histogram
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		m.duration.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	})
}

// methodLabel is the method as a metric label: the standard methods as
// they are, anything a client invents as OTHER.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// dbCollector reports requests by state and the job queue, read from
// PostgreSQL at most every 15 seconds so that scrapes stay cheap.
type dbCollector struct {
	st      *store.Store
	mu      sync.Mutex
	at      time.Time
	states  map[store.State]int
	jobs    map[string]int
	healthy bool
}

var (
	requestsDesc = prometheus.NewDesc("paddock_requests", "Requests by state.", []string{"state"}, nil)
	jobsDesc     = prometheus.NewDesc("paddock_jobs", "Background jobs not yet completed, by River state (available, scheduled, running and retryable are the queue; discarded jobs failed for good).", []string{"state"}, nil)
	dbUpDesc     = prometheus.NewDesc("paddock_database_up", "1 when the last statistics query succeeded.", nil, nil)
)

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- jobsDesc
	ch <- dbUpDesc
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 15*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		states, err1 := c.st.RequestsByState(ctx)
		jobs, err2 := c.st.JobsByState(ctx)
		cancel()
		c.healthy = err1 == nil && err2 == nil
		if c.healthy {
			c.states, c.jobs, c.at = states, jobs, time.Now()
		}
	}
	up := 0.0
	if c.healthy {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(dbUpDesc, prometheus.GaugeValue, up)
	for _, s := range []store.State{store.StatePendingApproval, store.StateApproved, store.StateProvisioning, store.StateRunning,
		store.StateStopped, store.StateFailed, store.StateRejected, store.StateExpired, store.StateDeleted} {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.GaugeValue, float64(c.states[s]), string(s))
	}
	for _, s := range []string{"available", "scheduled", "running", "retryable", "discarded", "cancelled", "pending"} {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(c.jobs[s]), s)
	}
}
