package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"paddock/internal/store"
)

// flash is a one-time message shown on the next page a user opens: what an
// action did, or why it was refused. It survives the redirect after a form
// (Post/Redirect/Get) in a cookie, and is shown once.
type flash struct {
	// Error marks a refusal; otherwise the message confirms what was done.
	Error bool
	Msg   string
	// Near names the control the message belongs next to on its page
	// ("scale", "extend", "rebuild"); empty: at the top of the page.
	Near string
}

// flashCookie carries a flash from a form's answer to the page it leads to.
// It is a cookie of its own, not a session value: the session is saved by
// every request (its idle deadline moves), so a live update running at the
// same moment as the form could write back the session without the flash.
const flashCookie = "paddock_flash"

type flashKey struct{}

// setFlash keeps f for the next page the user opens. The message is shown
// as text (escaped), and lives a minute at most.
func (s *Server) setFlash(w http.ResponseWriter, f flash) {
	b, err := json.Marshal(f)
	if err != nil {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/",
		MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.cfg.SecureCookies})
}

// takeFlash is middleware: a page (a GET that is neither an htmx fragment
// nor an event stream) takes the flash kept for it, which is then cleared.
func (s *Server) takeFlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(flashCookie)
		if err != nil || r.Method != http.MethodGet || r.Header.Get("HX-Request") != "" ||
			strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			next.ServeHTTP(w, r)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: s.cfg.SecureCookies})
		var f flash
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && json.Unmarshal(b, &f) == nil && f.Msg != "" {
			r = r.WithContext(context.WithValue(r.Context(), flashKey{}, &f))
		}
		next.ServeHTTP(w, r)
	})
}

// flashOf returns the flash this page took (takeFlash), if any.
func (s *Server) flashOf(r *http.Request) *flash {
	f, _ := r.Context().Value(flashKey{}).(*flash)
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
		s.setFlash(w, f)
	}
	http.Redirect(w, r, "/requests/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
	return nil
}

// requestFormLinks links the request form's problems to its fields.
func requestFormLinks(verr *store.ValidationError) []fieldLink {
	labels := map[string]string{"template": "Template", "size": "Size", "replicas": "How many VMs", "name": "VM name",
		"sshPublicKey": "SSH public key", "leaseDays": "Lease", "justification": "Justification", "quota": "Over quota:", "team": "Team"}
	return fieldLinks(verr, func(f string) string { return labels[f] }, func(f string) string {
		switch f {
		case "quota", "team":
			return ""
		case "size":
			return "field-size"
		}
		if _, ok := labels[f]; ok {
			return f
		}
		return ""
	})
}

// quotaLinks links a team's quota form problems to its fields.
func quotaLinks(t quotaTeam) []fieldLink {
	labels := map[string]string{"vcpu": "vCPU", "memoryGiB": "Memory", "vms": "VMs", "diskGiB": "Disk"}
	return fieldLinks(t.Errors, func(f string) string { return labels[f] }, func(f string) string {
		if _, ok := labels[f]; ok {
			return f + "-" + t.ID
		}
		return ""
	})
}

// fixFields asks to fix n highlighted fields.
func fixFields(n int) string {
	if n == 1 {
		return "Please fix the highlighted field below."
	}
	return "Please fix the " + nouns(n, "highlighted field", "highlighted fields") + " below."
}
