// Package web serves Paddock's pages and JSON API: one route table
// (routes.go), handlers as methods on Server, templ views fed view models.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/prometheus/client_golang/prometheus"

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
	// ClusterLacks says what the cluster lacks (an API it does not serve)
	// to run a template, as a pool when the flag is set; the request form
	// and the API refuse such a request at the field it names. nil refuses
	// nothing. serve wires provision.Watcher.Lacks.
	ClusterLacks func(spec store.TemplateSpec, pool bool) []store.FieldError

	// OIDC enables single sign-on with an OpenID provider; nil turns it off.
	OIDC *OIDCConfig
	// Proxy enables sign-in by the headers of an authenticating proxy
	// (oauth2-proxy style); nil turns it off. The headers are believed only
	// from TrustedProxies.
	Proxy *ProxyConfig
	// TrustedProxies are the addresses of reverse proxies in front of
	// Paddock: only from them are X-Forwarded-For (for rate limits and logs)
	// and the Proxy headers believed.
	TrustedProxies []netip.Prefix

	// SessionLifetime is the absolute limit of a web session (default 12h);
	// SessionIdleTimeout ends a session unused for that long (default 2h).
	SessionLifetime    time.Duration
	SessionIdleTimeout time.Duration

	// SignInRate and APIRate are requests per minute per client address
	// (signing in) and per token owner (API); 0 means the defaults, 60 and 600.
	SignInRate int
	APIRate    int

	// Registry receives Paddock's HTTP and database series and is served
	// at /metrics; nil makes a private one.
	Registry *prometheus.Registry
	// SeparateMetrics leaves /metrics out of Handler (it answers 404 there),
	// for a deployment that serves MetricsHandler on a listener of its own
	// that only the monitoring system can reach.
	SeparateMetrics bool

	// Webhooks says whether notifications go to any webhook
	// (PADDOCK_WEBHOOK_URLS), for the deliveries page.
	Webhooks bool

	// ConsoleIdleTimeout closes a console that had no input for that long;
	// ConsolePing is how often a console's websocket is pinged (a browser
	// that answers none of two pings is gone); ConsoleRecheck is how often
	// an open console checks that its user is still signed in and allowed.
	// 0 means the defaults, 15m, 20s and 15s.
	ConsoleIdleTimeout time.Duration
	ConsolePing        time.Duration
	ConsoleRecheck     time.Duration

	// LeaseGrace is how long an expired VM is kept before it is deleted, as
	// the lease keeper is configured; 0 means store.DefaultLeaseGrace.
	LeaseGrace time.Duration
}

// Defaults of Config.
const (
	DefaultSessionLifetime    = 12 * time.Hour
	DefaultSessionIdleTimeout = 2 * time.Hour
	DefaultSignInRate         = 60
	DefaultAPIRate            = 600
)

// Server holds the dependencies of every handler.
type Server struct {
	cfg      Config
	store    *store.Store
	cluster  *provision.Cluster
	watcher  *provision.Watcher
	sessions *scs.SessionManager
	hub      *Hub
	// offers keeps the catalog's offers by catalog version (catalogOffer).
	offers   catalogOffers
	log      *slog.Logger
	oidc     *oidcClient
	metrics  *metrics
	consoles *consoles
}

// New returns a Server. cluster and watcher may be nil in tests that do not
// provision.
func New(cfg Config, st *store.Store, cluster *provision.Cluster, watcher *provision.Watcher, log *slog.Logger) *Server {
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = DefaultSessionLifetime
	}
	if cfg.SessionIdleTimeout <= 0 {
		cfg.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if cfg.SignInRate <= 0 {
		cfg.SignInRate = DefaultSignInRate
	}
	if cfg.APIRate <= 0 {
		cfg.APIRate = DefaultAPIRate
	}
	if cfg.ConsoleIdleTimeout <= 0 {
		cfg.ConsoleIdleTimeout = DefaultConsoleIdleTimeout
	}
	if cfg.ConsolePing <= 0 {
		cfg.ConsolePing = DefaultConsolePing
	}
	if cfg.ConsoleRecheck <= 0 {
		cfg.ConsoleRecheck = DefaultConsoleRecheck
	}
	sm := scs.New()
	// The idle timeout would otherwise cost a database write per page
	// view (see touchStore): a session may end up to 1% of it early, at
	// most a minute.
	sm.Store = pageSessionStore{newTouchStore(pgxstore.NewWithCleanupInterval(st.Pool(), 10*time.Minute), min(time.Minute, cfg.SessionIdleTimeout/100)), st}
	sm.Lifetime = cfg.SessionLifetime
	sm.IdleTimeout = cfg.SessionIdleTimeout
	// The sessions table holds SHA-256 digests of the cookies, so a copy
	// of the database does not sign anyone in.
	sm.HashTokenInStore = true
	sm.Codec = sessionCodec{}
	sm.Cookie.Name = "paddock_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.SecureCookies
	s := &Server{cfg: cfg, store: st, cluster: cluster, watcher: watcher, sessions: sm,
		hub: NewHub(st.Pool(), log), log: log, metrics: newMetrics(cfg.Registry, st)}
	s.consoles = newConsoles(s.metrics.reg)
	if cfg.OIDC != nil {
		s.oidc = newOIDCClient(*cfg.OIDC)
	}
	// A session store that cannot be reached (PostgreSQL restarting) gets
	// the same answer as any handler: 503 with a retry hint, not a bare 500.
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		s.page(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
	}
	return s
}

// MetricsHandler serves the Prometheus series alone, for a listener of its
// own (see Config.SeparateMetrics).
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

// CloseStreams ends the open live-update streams and consoles; call it when
// the HTTP server starts shutting down (http.Server.RegisterOnShutdown).
func (s *Server) CloseStreams() {
	s.hub.Close()
	s.consoles.endAll()
}

// Run keeps the live-update hub listening until ctx ends.
func (s *Server) Run(ctx context.Context) { s.hub.Run(ctx) }
