package main

import (
	"context"
	"log/slog"
	"time"

	seeding "paddock/internal/seed"
	"paddock/internal/store"
)

// seedHistory tops the database up to n historical requests (`portal dev
// --seed-history N`) and refreshes the insight summary, so that the history
// and insight pages have something to show at once. A database that already
// holds n requests is left as it is.
func seedHistory(ctx context.Context, st *store.Store, n int, log *slog.Logger) error {
	start := time.Now()
	last := time.Now()
	added, err := seeding.History(ctx, st, n, start, 1, func(done int) {
		if time.Since(last) > 10*time.Second {
			log.Info("seeding history", "added", done, "elapsed", time.Since(start).Round(time.Second))
			last = time.Now()
		}
	})
	if err != nil {
		return err
	}
	if added == 0 {
		return nil
	}
	log.Info("seeded history", "requests", added, "took", time.Since(start).Round(time.Second))
	t := time.Now()
	res, err := st.RefreshInsight(ctx, time.Now())
	if err != nil {
		return err
	}
	log.Info("insight refreshed", "requests", res.Requests, "weeks", res.Weeks, "took", time.Since(t).Round(time.Millisecond))
	return nil
}
