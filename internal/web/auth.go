package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"paddock/internal/store"
)

type ctxKey int

const userKey ctxKey = 1

const sessionUserID = "user_id"

// withUser loads the signed-in user (if any) into the request context,
// from what the session's load read with it (pageSessionStore) unless a
// sign-in renewed the session since. The
// session must still be mapped to its user in user_sessions: signing out
// everywhere deletes the mapping, which ends the session even if a request
// in flight writes the scs row back. A disabled user's session is ended
// here too.
func (s *Server) withUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		key := sessionKey(s.sessions.Token(ctx))
		p, preloaded := preloadOf(ctx, key)
		if preloaded {
			ctx = store.WithCatalogVersion(ctx, p.catalog)
			r = r.WithContext(ctx)
		}
		if id := s.sessions.GetInt64(ctx, sessionUserID); id != 0 {
			var u store.User
			var err error
			switch {
			case preloaded && p.user != nil:
				u = *p.user
			case preloaded:
				err = store.ErrNotFound
			default:
				u, err = s.store.UserBySession(ctx, key)
			}
			switch {
			case err == nil && u.ID == id:
				r = r.WithContext(context.WithValue(ctx, userKey, u))
			case err == nil, errors.Is(err, store.ErrNotFound):
				_ = s.sessions.Destroy(ctx)
			default:
				s.page(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sessionKey is the key under which scs stores a session token (with
// HashTokenInStore): the SHA-256 of the cookie value.
func sessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// startSession signs u in on this browser: a new session id (which defeats
// session fixation), the user in the session, and the session recorded
// against the user (for sign-out everywhere) with the sign-in audited.
func (s *Server) startSession(r *http.Request, u store.User, via string, details map[string]any) error {
	ctx := r.Context()
	if old := s.sessions.Token(ctx); old != "" {
		if err := s.store.EndSession(ctx, sessionKey(old)); err != nil {
			return err
		}
	}
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	s.sessions.Put(ctx, sessionUserID, u.ID)
	err := s.store.StartSession(ctx, u, sessionKey(s.sessions.Token(ctx)), via,
		time.Now().Add(s.cfg.SessionLifetime), details)
	if err != nil {
		// Unmapped, the session would not sign anyone in (see withUser);
		// it should not even look as if it did.
		s.sessions.Remove(ctx, sessionUserID)
	}
	return err
}

func userFrom(ctx context.Context) (store.User, bool) {
	u, ok := ctx.Value(userKey).(store.User)
	return u, ok
}

// requireUser sends visitors who are not signed in to the sign-in page.
func (s *Server) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := userFrom(r.Context()); !ok {
			if r.Header.Get("HX-Request") == "true" {
				w.Header().Set("HX-Redirect", "/signin")
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireToken authenticates API calls by their bearer token; the token acts
// with its owner's current role, and not at all once its owner is disabled.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="paddock"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing bearer token; create one on your profile page (/profile)"})
			return
		}
		u, err := s.store.UserByToken(r.Context(), strings.TrimSpace(tok))
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="paddock", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "the token is unknown, expired or revoked, or its owner's account is disabled"})
			return
		}
		if err != nil {
			s.api(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
	})
}

// signInPage shows the dev sign-in (pick a seeded user) when enabled.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) error {
	vm := signInView{Base: s.viewBase(r, "Sign in"), Dev: s.cfg.DevSignIn, Next: safeNext(r.URL.Query().Get("next")),
		SSO: s.oidc != nil, Proxy: s.cfg.Proxy != nil}
	if s.cfg.DevSignIn {
		users, err := s.store.Users(r.Context())
		if err != nil {
			return err
		}
		vm.Personas, vm.Users = devPersonas(users)
	}
	return render(w, r, http.StatusOK, signInPageView(vm))
}

// devSignIn signs in as the chosen seeded user (portal dev only); a
// disabled user is refused, as at any other sign-in (startSession).
func (s *Server) devSignIn(w http.ResponseWriter, r *http.Request) error {
	if !s.cfg.DevSignIn {
		return errNotFound
	}
	u, err := s.store.UserByLogin(r.Context(), r.PostFormValue("login"))
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusBadRequest, "There is no user with that login.")
	}
	if err != nil {
		return err
	}
	if err := s.startSession(r, u, "dev", nil); err != nil {
		return err
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
	return nil
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	if tok := s.sessions.Token(r.Context()); tok != "" {
		if err := s.store.EndSession(r.Context(), sessionKey(tok)); err != nil {
			return err
		}
	}
	if err := s.sessions.Destroy(r.Context()); err != nil {
		return err
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// signOutEverywhere ends every web session of the user, on every browser.
func (s *Server) signOutEverywhere(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if _, err := s.store.EndAllSessions(r.Context(), store.UserActor(u), u); err != nil {
		return err
	}
	s.consoles.endUser(u.ID, "You signed out everywhere, so the console was closed.")
	if err := s.sessions.Destroy(r.Context()); err != nil {
		return err
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// safeNext returns next if it is a path on this site, else "/": it is
// where the browser goes after sign-in, and a link to the sign-in page
// must not send people off-site (an open redirect). It judges next as a
// browser will read it: the WHATWG URL parser drops every ASCII tab, CR
// and LF, so "/\t/evil.example" is "//evil.example", a link to another
// host; and it treats a backslash as a slash, so "/\evil" is one too.
func safeNext(next string) string {
	next = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, next)
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return next
}

// devPersonas splits the seeded users for the dev sign-in page: the three
// personas the README names, in that order, and then everyone else.
// Disabled users are left out, since they cannot sign in.
func devPersonas(users []store.User) (personas, others []store.User) {
	order := []string{"developer", "platform", "manager"}
	byLogin := map[string]store.User{}
	for _, u := range users {
		if u.Disabled {
			continue
		}
		if slices.Contains(order, u.Login) {
			byLogin[u.Login] = u
			continue
		}
		others = append(others, u)
	}
	for _, l := range order {
		if u, ok := byLogin[l]; ok {
			personas = append(personas, u)
		}
	}
	return personas, others
}
