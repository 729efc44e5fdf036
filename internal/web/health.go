package web

import (
	"context"
	"net/http"
	"time"
)

// healthz answers while the process is up.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when PostgreSQL answers, migrations are applied and the
// cluster's informers have synced; 503 with the reason otherwise.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fail := func(msg string) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(msg + "\n"))
	}
	if err := s.store.Ping(ctx); err != nil {
		fail("database unreachable")
		return
	}
	if ok, err := s.store.MigrationsCurrent(ctx); err != nil || !ok {
		fail("database migrations not applied")
		return
	}
	if s.watcher != nil && !s.watcher.Synced() {
		fail("cluster informers not synced")
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
