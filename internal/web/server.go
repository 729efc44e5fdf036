// Package web serves Paddock's pages and JSON API: one route table
// (routes.go), handlers as methods on Server, templ views fed view models.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"

	"paddock/internal/provision"
	"paddock/internal/store"
)

// Config is what the web layer needs to know about its deployment.
type Config struct {
	// DevSignIn enables the page where anyone picks a seeded user. Only
	// `portal dev` sets it.
	DevSignIn bool
	// SecureCookies marks the session cookie Secure (behind TLS).
	SecureCookies bool
	// ClusterName is shown in the footer and the API ("simulated" or "kubernetes").
	ClusterName string
}

// Server holds the dependencies of every handler.
type Server struct {
	cfg      Config
	store    *store.Store
	cluster  *provision.Cluster
	watcher  *provision.Watcher
	sessions *scs.SessionManager
	hub      *Hub
	log      *slog.Logger
}

// New returns a Server. cluster and watcher may be nil in tests that do not
// provision.
func New(cfg Config, st *store.Store, cluster *provision.Cluster, watcher *provision.Watcher, log *slog.Logger) *Server {
	sm := scs.New()
	sm.Store = pgxstore.NewWithCleanupInterval(st.Pool(), 10*time.Minute)
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 2 * time.Hour
	sm.Cookie.Name = "paddock_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.SecureCookies
	return &Server{cfg: cfg, store: st, cluster: cluster, watcher: watcher, sessions: sm,
		hub: NewHub(st.Pool(), log), log: log}
}

// Run keeps the live-update hub listening until ctx ends.
func (s *Server) Run(ctx context.Context) { s.hub.Run(ctx) }
