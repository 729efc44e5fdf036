package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// tokenLifetimes are the expiries offered for a new API token, in days.
var tokenLifetimes = []int{7, 30, 90, 365}

type profileView struct {
	Base     base
	User     store.User
	Tokens   []tokenRow
	Sessions []store.Session
	// NewToken is the plaintext of a token just created: shown once.
	NewToken     string
	NewTokenName string
	Form         tokenForm
	Errors       *store.ValidationError
	Lifetimes    []int
}

func (v profileView) err(field string) string { return v.Errors.For(field) }

type tokenForm struct {
	Name        string
	ExpiresDays string
}

type tokenRow struct {
	ID       int64
	Name     string
	Created  string
	Expires  string
	LastUsed string
	Status   string
	Active   bool
}

func (s *Server) profileView(r *http.Request, form tokenForm, verr *store.ValidationError) (profileView, error) {
	u, _ := userFrom(r.Context())
	toks, err := s.store.Tokens(r.Context(), u.ID)
	if err != nil {
		return profileView{}, err
	}
	sess, err := s.store.Sessions(r.Context(), u.ID)
	if err != nil {
		return profileView{}, err
	}
	if form.ExpiresDays == "" {
		form.ExpiresDays = "30"
	}
	v := profileView{Base: s.viewBase(r, "Your profile"), User: u, Sessions: sess, Form: form, Errors: verr, Lifetimes: tokenLifetimes}
	now := time.Now()
	for _, t := range toks {
		row := tokenRow{ID: t.ID, Name: t.Name, Created: fmtTime(t.CreatedAt), Expires: "never", LastUsed: "never", Active: t.Active(now)}
		if t.ExpiresAt != nil {
			row.Expires = fmtTime(*t.ExpiresAt)
		}
		if t.LastUsedAt != nil {
			// Recorded at most once a minute (store.UserByToken): shown to
			// the minute.
			row.LastUsed = fmtMinute(*t.LastUsedAt)
		}
		switch {
		case t.RevokedAt != nil:
			row.Status = "revoked " + fmtTime(*t.RevokedAt)
		case !row.Active:
			row.Status = "expired"
		default:
			row.Status = "active"
		}
		v.Tokens = append(v.Tokens, row)
	}
	return v, nil
}

// profile shows who the user is, their API tokens and their sessions.
func (s *Server) profile(w http.ResponseWriter, r *http.Request) error {
	v, err := s.profileView(r, tokenForm{}, nil)
	if err != nil {
		return err
	}
	return render(w, r, http.StatusOK, profilePage(v))
}

// tokenCreate makes a personal API token and shows it once, on this answer
// only (not cached, not kept anywhere but as a hash).
func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if err := r.ParseForm(); err != nil {
		return errStatus(http.StatusBadRequest, "The form could not be read; it may be too large.")
	}
	form := tokenForm{Name: strings.TrimSpace(r.PostFormValue("name")), ExpiresDays: r.PostFormValue("expiresDays")}
	days, err := strconv.Atoi(form.ExpiresDays)
	var exp *time.Time
	if err == nil && days >= 1 && days <= store.MaxTokenDays {
		t := time.Now().Add(time.Duration(days) * 24 * time.Hour)
		exp = &t
	}
	verr := store.CheckToken(form.Name, exp)
	if exp == nil {
		verr.Add("expiresDays", "must be a number of days between 1 and %d", store.MaxTokenDays)
	}
	var plain string
	if len(verr.Fields) == 0 {
		plain, err = s.store.CreateToken(r.Context(), u.ID, form.Name, exp)
		if err != nil && !errors.As(err, &verr) {
			return err
		}
	}
	if len(verr.Fields) > 0 {
		v, err := s.profileView(r, form, verr)
		if err != nil {
			return err
		}
		return render(w, r, http.StatusUnprocessableEntity, profilePage(v))
	}
	v, err := s.profileView(r, tokenForm{}, nil)
	if err != nil {
		return err
	}
	v.NewToken, v.NewTokenName = plain, form.Name
	w.Header().Set("Cache-Control", "no-store")
	return render(w, r, http.StatusOK, profilePage(v))
}

// tokenRevoke revokes one of the user's own tokens; another user's token
// is not found.
func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	id, err := strconv.ParseInt(chi.URLParam(r, "tokenID"), 10, 64)
	if err != nil || id <= 0 {
		return errNotFound
	}
	if err := s.store.RevokeToken(r.Context(), u, id); err != nil {
		return err
	}
	http.Redirect(w, r, "/profile", http.StatusSeeOther)
	return nil
}
