package store_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// TestQueryMetricsNameTheCallingFunction runs statements through a pool
// traced by QueryMetrics on a real PostgreSQL and reads the series a
// registry gathers: each is named by the store method that ran it (its
// transaction's BEGIN and COMMIT under the one that began it), never by
// pgx, inTx or a closure.
func TestQueryMetricsNameTheCallingFunction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	qm := store.NewQueryMetrics()
	cfg.ConnConfig.Tracer = qm
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg := prometheus.NewRegistry()
	reg.MustRegister(qm)
	st := store.New(pool)

	counts := func() map[string]uint64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, f := range families {
			if f.GetName() != "paddock_db_query_duration_seconds" {
				t.Fatalf("unexpected family %s", f.GetName())
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "query" {
						out[l.GetValue()] = m.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		return out
	}

	// One statement outside a transaction: one sample, then a second.
	if _, err := st.Teams(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counts()["store.(*Store).Teams"]; got != 1 {
		t.Fatalf("after Teams: %d samples under store.(*Store).Teams, want 1; all: %v", got, counts())
	}
	// A transaction run by inTx from a closure: BEGIN and COMMIT under the
	// method that began it, its statements under the functions that ran
	// them (publish, a helper it calls).
	if _, _, err := st.PublishTemplate(ctx, testTemplate("ubuntu", true), nil); err != nil {
		t.Fatal(err)
	}
	c := counts()
	if got := c["store.(*Store).PublishTemplateChange"]; got != 2 {
		t.Fatalf("after PublishTemplate: %d samples under store.(*Store).PublishTemplateChange, want its BEGIN and COMMIT; all: %v", got, c)
	}
	if c["store.(*Store).publish"] == 0 {
		t.Fatalf("after PublishTemplate: no samples under store.(*Store).publish, which runs its statements; all: %v", c)
	}
	for name := range c {
		if strings.Contains(name, "pgx") || strings.Contains(name, "inTx") || strings.Contains(name, ".func") || name == "unknown" {
			t.Errorf("series %q names what a statement passes through, not what ran it; all: %v", name, slices.Sorted(maps.Keys(c)))
		}
	}
	if c["store.(*Store).Teams"] != 1 {
		t.Errorf("Teams' count moved to %d without a call", c["store.(*Store).Teams"])
	}
}
