package web

import (
	"errors"
	"net/http"
	"strconv"

	"paddock/internal/store"
)

// flash is a one-time message shown on the next page a user opens: what an
// action did, or why it was refused. It lives in the session, so it survives
// the redirect after a form (Post/Redirect/Get) and is shown once.
type flash struct {
	// Error marks a refusal; otherwise the message confirms what was done.
	Error bool
	Msg   string
	// Near names the control the message belongs next to on its page
	// ("scale", "extend", "rebuild"); empty: at the top of the page.
	Near string
}

const (
	flashKeyMsg   = "flash.msg"
	flashKeyError = "flash.error"
	flashKeyNear  = "flash.near"
)

// setFlash keeps f for the next page the user opens.
func (s *Server) setFlash(r *http.Request, f flash) {
	ctx := r.Context()
	s.sessions.Put(ctx, flashKeyMsg, f.Msg)
	s.sessions.Put(ctx, flashKeyError, f.Error)
	s.sessions.Put(ctx, flashKeyNear, f.Near)
}

// popFlash takes the flash kept for this page, if any. Only full pages for a
// signed-in user (so within the session middleware) take it: an htmx
// fragment or a form post leaves it for the page that follows.
func (s *Server) popFlash(r *http.Request) *flash {
	if _, ok := userFrom(r.Context()); !ok || r.Method != http.MethodGet || r.Header.Get("HX-Request") != "" {
		return nil
	}
	ctx := r.Context()
	if !s.sessions.Exists(ctx, flashKeyMsg) {
		return nil
	}
	f := &flash{Msg: s.sessions.PopString(ctx, flashKeyMsg), Error: s.sessions.PopBool(ctx, flashKeyError),
		Near: s.sessions.PopString(ctx, flashKeyNear)}
	if f.Msg == "" {
		return nil
	}
	return f
}

// backToRequest ends a form posted from a request's page: 303 back to the
// page, with done as its flash. When err is a refusal the user can act on
// (an invalid value, a state that does not allow it, a rule of the quota or
// of a role), the page shows the reason next to the control named near
// instead of an error page; other errors (a role's refusal, a missing
// request, an internal failure) are returned.
func (s *Server) backToRequest(w http.ResponseWriter, r *http.Request, id int64, near, done string, err error) error {
	f := flash{Msg: done}
	if err != nil {
		if msg := validationMessage(err); msg != "" {
			err = errStatus(http.StatusUnprocessableEntity, msg)
		}
		status, msg := classify(err)
		// Controls a role may not use are not offered: reaching one is no
		// dead end to mend, and keeps its status.
		if status >= 500 || status == http.StatusNotFound || status == http.StatusForbidden || errors.Is(err, store.ErrNotFound) {
			return err
		}
		f = flash{Error: true, Msg: msg, Near: near}
	}
	if f.Msg != "" {
		s.setFlash(r, f)
	}
	http.Redirect(w, r, "/requests/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
	return nil
}
