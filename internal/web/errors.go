package web

import (
	"errors"
	"net/http"
	"strings"

	"paddock/internal/store"
)

// httpError is an error with the status and the words a user should see.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errStatus(status int, msg string) error { return &httpError{status: status, msg: msg} }

var (
	errNotFound  = errStatus(http.StatusNotFound, "There is nothing here, or you may not see it.")
	errForbidden = errStatus(http.StatusForbidden, "Your role does not allow this.")
)

// classify maps an error to a status and a message safe to show. Internal
// errors are logged by the caller and shown as a generic sentence.
func classify(err error) (int, string) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, errNotFound.Error()
	case errors.Is(err, store.ErrUserDisabled):
		return http.StatusForbidden, "This Paddock account is disabled, so you are not signed in. If you think this is a mistake, ask the platform team."
	}
	if reason, ok := store.ConflictReason(err); ok {
		return http.StatusConflict, "This cannot be done now: " + strings.TrimSuffix(reason, ".") + "."
	}
	if msg := validationMessage(err); msg != "" {
		return http.StatusUnprocessableEntity, msg
	}
	return http.StatusInternalServerError, "Something went wrong on our side. It has been logged; please try again in a moment."
}

// page adapts a handler that returns an error to http.HandlerFunc, rendering
// failures as an HTML error page.
func (s *Server) page(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			status, msg := classify(err)
			if status >= 500 {
				s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			if retry := retryAfter(err); retry != "" {
				w.Header().Set("Retry-After", retry)
				status, msg = http.StatusServiceUnavailable, "Paddock cannot reach its database right now. Try again in a few seconds."
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(status)
			_ = errorPage(s.viewBase(r, ""), status, msg).Render(r.Context(), w)
		}
	}
}

// api adapts a handler to the JSON API's error format:
// {"error": "...", "fields": [{"field": "name", "message": "..."}]}.
func (s *Server) api(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var v *store.ValidationError
		if errors.As(err, &v) {
			writeJSON(w, http.StatusUnprocessableEntity, apiError{Error: "the request has invalid fields", Fields: v.Fields})
			return
		}
		status, msg := classify(err)
		if status >= 500 {
			s.log.ErrorContext(r.Context(), "api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		if retry := retryAfter(err); retry != "" {
			w.Header().Set("Retry-After", retry)
			status, msg = http.StatusServiceUnavailable, "database unavailable; retry shortly"
		}
		writeJSON(w, status, apiError{Error: msg})
	}
}

// retryAfter reports a Retry-After value when err means PostgreSQL is away.
func retryAfter(err error) string {
	if store.Unavailable(err) {
		return "5"
	}
	return ""
}
