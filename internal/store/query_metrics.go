package store

import (
	"context"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// QueryMetrics times every statement a pool runs (set it as the pool's
// tracer: pgxpool.Config.ConnConfig.Tracer) and serves the times to
// Prometheus as paddock_db_query_duration_seconds, by the function of
// Paddock (or of River) that ran the statement: a statement's text holds
// literals (a team's id, a page's offset), so it would make a series per
// value, while the functions are a fixed set. A statement's time runs from
// sending it to reading its last row; a batch counts as one statement of the
// function that sent it.
type QueryMetrics struct {
	duration *prometheus.HistogramVec
	names    sync.Map // program counter of the calling frame → label
}

// NewQueryMetrics returns the tracer; register it with a Prometheus registry
// for /metrics to serve it.
func NewQueryMetrics() *QueryMetrics {
	return &QueryMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "paddock", Name: "db_query_duration_seconds",
		Help: "Time from sending a statement (or a batch) to PostgreSQL to reading its last row, by the function that ran it; " +
			"BEGIN and COMMIT count under the function whose transaction they are.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"query"})}
}

// Describe and Collect make QueryMetrics a prometheus.Collector.
func (m *QueryMetrics) Describe(ch chan<- *prometheus.Desc) { m.duration.Describe(ch) }

// Collect implements prometheus.Collector.
func (m *QueryMetrics) Collect(ch chan<- prometheus.Metric) { m.duration.Collect(ch) }

type queryTimingKey struct{}

type queryTiming struct {
	label string
	start time.Time
}

func (m *QueryMetrics) begin(ctx context.Context) context.Context {
	return context.WithValue(ctx, queryTimingKey{}, queryTiming{label: m.caller(), start: time.Now()})
}

func (m *QueryMetrics) end(ctx context.Context) {
	if t, ok := ctx.Value(queryTimingKey{}).(queryTiming); ok {
		m.duration.WithLabelValues(t.label).Observe(time.Since(t.start).Seconds())
	}
}

// TraceQueryStart implements pgx.QueryTracer.
func (m *QueryMetrics) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return m.begin(ctx)
}

// TraceQueryEnd implements pgx.QueryTracer.
func (m *QueryMetrics) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	m.end(ctx)
}

// TraceBatchStart implements pgx.BatchTracer.
func (m *QueryMetrics) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return m.begin(ctx)
}

// TraceBatchQuery implements pgx.BatchTracer: the batch is timed as a whole.
func (m *QueryMetrics) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (m *QueryMetrics) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	m.end(ctx)
}

// caller names the function that ran the statement: the first frame outside
// pgx, database/sql, River's pgx driver (whose callers are River's queries,
// dbsqlc.(*Queries).JobGetAvailable) and inTx (whose caller is the one
// whose transaction it is). Names are kept by program counter, so each is
// worked out once.
func (m *QueryMetrics) caller() string {
	var pcs [32]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function != "" && !tracedThrough(f.Function) {
			if name, ok := m.names.Load(f.PC); ok {
				return name.(string)
			}
			name := queryLabel(f.Function)
			m.names.Store(f.PC, name)
			return name
		}
		if !more {
			return "unknown"
		}
	}
}

// tracedThrough reports the functions a statement passes through on its way
// to pgx, which name no query of their own.
func tracedThrough(fn string) bool {
	return strings.HasPrefix(fn, "github.com/jackc/pgx/") || strings.HasPrefix(fn, "database/sql.") ||
		strings.HasPrefix(fn, "github.com/riverqueue/river/riverdriver/riverpgxv5.") ||
		strings.HasPrefix(fn, "paddock/internal/store.(*QueryMetrics)") || strings.HasPrefix(fn, "paddock/internal/store.(*Store).inTx")
}

// closureSuffix is what Go appends to a function's name for the closures
// inside it (Store.Submit.func1, …func2.3) and for generic instances.
var closureSuffix = regexp.MustCompile(`(\.func\d+(\.\d+)*|\[\.\.\.\])+$`)

// queryLabel shortens a function's full name to its package's last element
// and the function (store.(*Store).RequestPage), the closures in a function
// counting as the function.
func queryLabel(fn string) string {
	fn = closureSuffix.ReplaceAllString(fn, "")
	if i := strings.LastIndex(fn, "/"); i >= 0 {
		fn = fn[i+1:]
	}
	return fn
}
