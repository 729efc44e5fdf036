package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"paddock/static"
)

// MaxBodyBytes bounds every request body (1 MiB).
const MaxBodyBytes = 1 << 20

// Handler returns the whole HTTP surface, guarded against cross-site
// request forgery: state-changing requests from other origins are refused.
func (s *Server) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(crossOriginDenied))
	return cop.Handler(s.Router())
}

// crossOriginDenied answers a refused cross-origin request: in the API's
// error format under /api/, as a short text elsewhere.
func crossOriginDenied(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, http.StatusForbidden, apiError{Error: "cross-origin request refused"})
		return
	}
	http.Error(w, "cross-origin request refused", http.StatusForbidden)
}

// Router returns the route table: every route is listed here. Tests walk it
// to check that each route has a row in the role × route matrix.
func (s *Server) Router() chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.clientIP(), s.logRequests, s.metrics.instrument, middleware.Recoverer, securityHeaders, limitBody, cleanQuery)

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if !s.cfg.SeparateMetrics {
		r.Method(http.MethodGet, "/metrics", s.metrics.handler())
	}
	r.Handle("/static/*", static.Handler())

	// Pages, with a session.
	r.Group(func(r chi.Router) {
		r.Use(preloadSession, s.sessions.LoadAndSave, s.withProxyUser, s.withUser, s.takeFlash)
		r.Get("/signin", s.page(s.signInPage))
		r.Post("/signout", s.page(s.signOut))

		// Signing in, rate-limited per client address.
		r.Group(func(r chi.Router) {
			r.Use(s.signInLimit())
			r.Post("/dev/signin", s.page(s.devSignIn))
			r.Get("/auth/oidc/login", s.page(s.oidcLogin))
			r.Get("/auth/oidc/callback", s.page(s.oidcCallback))
		})

		r.Group(func(r chi.Router) {
			r.Use(s.requireUser)
			r.Get("/", http.RedirectHandler("/catalog", http.StatusSeeOther).ServeHTTP)
			r.Get("/catalog", s.page(s.catalog))
			r.Get("/catalog/{name}", s.page(s.catalogShow))
			r.Get("/requests", s.page(s.requestList))
			r.Get("/teams/{team}/manifests.zip", s.page(s.teamManifests))
			r.Get("/requests/new", s.page(s.requestNew))
			r.Post("/requests", s.page(s.requestCreate))
			r.Post("/requests/preflight", s.page(s.requestPreflight))
			r.Get("/requests/{id}", s.page(s.requestShow))
			r.Get("/requests/{id}/live", s.page(s.requestLive))
			r.Get("/requests/{id}/stream", s.page(s.stream))
			r.Get("/requests/{id}/manifest", s.page(s.requestManifest))
			r.Post("/requests/{id}/actions/{action}", s.page(s.requestAction))
			r.Post("/requests/{id}/extend", s.page(s.requestExtend))
			r.Post("/requests/{id}/rebuild", s.page(s.requestRebuild))
			r.Post("/requests/{id}/pet", s.page(s.requestPet))
			r.Post("/requests/{id}/scale", s.page(s.requestScale))
			r.Get("/requests/{id}/console/{kind}", s.page(s.consolePage))
			r.Get("/requests/{id}/console/{kind}/ws", s.page(s.consoleSocket))
			r.Get("/requests/{id}/screenshot", s.page(s.vmScreenshot))

			// The approval queue: managers and the platform team.
			r.Group(func(r chi.Router) {
				r.Use(s.allow(canSeeApprovals))
				r.Get("/approvals", s.page(s.approvals))
				r.Get("/approvals/live", s.page(s.approvalsLive))
				r.Post("/approvals/{approvalID}/{verdict}", s.page(s.approvalDecide))
			})

			// The platform team's guardrail pages: quotas, approval rules, webhooks.
			r.Group(func(r chi.Router) {
				r.Use(s.allow(canManageGuardrails))
				r.Get("/platform/quotas", s.page(s.platformQuotas))
				r.Post("/platform/quotas/{teamID}", s.page(s.quotaSave))
				r.Get("/platform/rules", s.page(s.platformRules))
				r.Post("/platform/rules", s.page(s.ruleSave))
				r.Post("/platform/rules/{ruleID}/delete", s.page(s.ruleDelete))
				r.Get("/platform/webhooks", s.page(s.platformWebhooks))
			})

			r.Get("/profile", s.page(s.profile))
			r.Post("/profile/tokens", s.page(s.tokenCreate))
			r.Post("/profile/tokens/{tokenID}/revoke", s.page(s.tokenRevoke))
			r.Post("/signout/everywhere", s.page(s.signOutEverywhere))

			r.With(s.allow(canReadAudit)).Get("/audit", s.page(s.auditLog))
			r.With(s.allow(canReadAudit)).Get("/audit.csv", s.page(s.auditExport))

			// Request history (developers: their team's) and insight (managers, platform).
			r.Get("/history", s.page(s.history))
			r.Get("/history.csv", s.page(s.historyCSV))
			r.With(s.allow(canSeeInsight)).Get("/insight", s.page(s.insight))

			// The platform team's template pages.
			r.Group(func(r chi.Router) {
				r.Use(s.allow(canManageTemplates))
				r.Get("/platform/templates", s.page(s.platformTemplates))
				r.Post("/platform/templates", s.page(s.templateCreate))
				r.Get("/platform/templates/new", s.page(s.templateNew))
				r.Post("/platform/templates/preview", s.page(s.templatePreview))
				r.Get("/platform/templates/import", s.page(s.templateImportForm))
				r.Post("/platform/templates/import", s.page(s.templateImport))
				r.Get("/platform/templates/{name}", s.page(s.templateShow))
				r.Post("/platform/templates/{name}", s.page(s.templateUpdate))
				r.Get("/platform/templates/{name}/edit", s.page(s.templateEdit))
				r.Get("/platform/templates/{name}/clone", s.page(s.templateClone))
				r.Get("/platform/templates/{name}/diff", s.page(s.templateDiff))
				r.Get("/platform/templates/{name}/versions/{version}", s.page(s.templateVersionShow))
				r.Post("/platform/templates/{name}/versions/{version}/republish", s.page(s.templateRollback))
				r.Post("/platform/templates/{name}/versions/{version}/withdraw", s.page(s.templateWithdraw))
				r.Post("/platform/templates/{name}/versions/{version}/reinstate", s.page(s.templateReinstate))
				r.Post("/platform/templates/{name}/deprecate", s.page(s.templateDeprecate))
				r.Post("/platform/templates/{name}/restore", s.page(s.templateRestore))
				r.Post("/platform/templates/{name}/retire", s.page(s.templateRetire))
				r.Get("/platform/rollouts", s.page(s.platformRollouts))
				r.Get("/platform/rollouts/new", s.page(s.rolloutNew))
				r.Post("/platform/rollouts", s.page(s.rolloutCreate))
				r.Get("/platform/rollouts/{rolloutID}", s.page(s.rolloutShow))
				r.Get("/platform/rollouts/{rolloutID}/progress", s.page(s.rolloutProgress))
				r.Post("/platform/rollouts/{rolloutID}/{action}", s.page(s.rolloutAct))
			})
		})
	})

	// JSON API v1, with bearer tokens.
	r.Route("/api/v1", func(r chi.Router) {
		r.Get("/openapi.json", s.openAPI)
		r.Group(func(r chi.Router) {
			r.Use(s.apiLimit(false), s.requireToken, s.apiLimit(true), middleware.Timeout(30*time.Second))
			r.Get("/templates", s.api(s.apiTemplates))
			r.Get("/requests", s.api(s.apiRequests))
			r.Post("/requests", s.api(s.apiCreateRequest))
			r.Get("/requests/{id}", s.api(s.apiRequest))
			r.Get("/requests/{id}/manifest", s.api(s.apiManifest))
			r.Post("/requests/{id}/actions/{action}", s.api(s.apiAction))
			r.Post("/requests/{id}/extend", s.api(s.apiExtend))
			r.Post("/requests/{id}/rebuild", s.api(s.apiRebuild))
			r.Post("/requests/{id}/pet", s.api(s.apiPet))
			r.Post("/requests/{id}/scale", s.api(s.apiScale))
			r.Get("/approvals", s.api(s.apiApprovals))
			r.Post("/approvals/{approvalID}/{verdict}", s.api(s.apiApprovalDecide))
			r.Delete("/requests/{id}", s.api(s.apiDelete))

			// Rollouts: the platform team.
			r.Group(func(r chi.Router) {
				r.Use(s.allowAPI(canManageTemplates))
				r.Get("/rollouts", s.api(s.apiRollouts))
				r.Post("/rollouts", s.api(s.apiCreateRollout))
				r.Get("/rollouts/{rolloutID}", s.api(s.apiRollout))
				r.Post("/rollouts/{rolloutID}/{action}", s.api(s.apiRolloutAction))
			})
		})
	})
	r.NotFound(s.page(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	return r
}

// contentSecurityPolicy allows scripts, styles and connections (websockets
// too) from this site only.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// logRequests writes one structured line per request, with its request id.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			return
		}
		s.log.InfoContext(r.Context(), "http", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
			"bytes", ww.BytesWritten(), "duration_ms", time.Since(start).Milliseconds())
	})
}
