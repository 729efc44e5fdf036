package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"paddock/internal/store"
)

type ctxKey int

const userKey ctxKey = 1

const sessionUserID = "user_id"

// withUser loads the signed-in user (if any) into the request context.
func (s *Server) withUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := s.sessions.GetInt64(r.Context(), sessionUserID)
		if id != 0 {
			u, err := s.store.UserByID(r.Context(), id)
			switch {
			case err == nil:
				r = r.WithContext(context.WithValue(r.Context(), userKey, u))
			case errors.Is(err, store.ErrNotFound):
				_ = s.sessions.Destroy(r.Context())
			default:
				s.page(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
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
// with its owner's current role.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="paddock"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing bearer token; create one with `portal token create --user LOGIN`"})
			return
		}
		u, err := s.store.UserByToken(r.Context(), strings.TrimSpace(tok))
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="paddock", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "the token is unknown, expired or revoked"})
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
	vm := signInView{Base: s.viewBase(r, "Sign in"), Dev: s.cfg.DevSignIn, Next: safeNext(r.URL.Query().Get("next"))}
	if s.cfg.DevSignIn {
		users, err := s.store.Users(r.Context())
		if err != nil {
			return err
		}
		vm.Users = users
	}
	return render(w, r, http.StatusOK, signInPageView(vm))
}

// devSignIn signs in as the chosen seeded user (portal dev only).
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
	// A new session id at sign-in defeats session fixation.
	if err := s.sessions.RenewToken(r.Context()); err != nil {
		return err
	}
	s.sessions.Put(r.Context(), sessionUserID, u.ID)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
	return nil
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := s.sessions.Destroy(r.Context()); err != nil {
		return err
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// safeNext allows only local paths as a post-sign-in destination.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) {
		return "/"
	}
	return next
}
