package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// templateDeprecate hides a template from new requests, with a note that
// pages of existing VMs show. A missing note shows the page again with the
// problem at the note field.
func (s *Server) templateDeprecate(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	u, _ := userFrom(r.Context())
	note := r.PostFormValue("note")
	err := s.store.DeprecateTemplate(r.Context(), name, note, store.UserActor(u))
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		v, err := s.templateView(r, verr, note)
		if err != nil {
			return err
		}
		return render(w, r, http.StatusUnprocessableEntity, templatePage(v))
	}
	return s.afterLifecycle(w, r, name, "deprecated", err)
}

// templateRestore opens a deprecated or retired template to requests again.
func (s *Server) templateRestore(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	u, _ := userFrom(r.Context())
	return s.afterLifecycle(w, r, name, "restored", s.store.RestoreTemplate(r.Context(), name, store.UserActor(u)))
}

// templateRetire removes a deprecated template from every list.
func (s *Server) templateRetire(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	u, _ := userFrom(r.Context())
	return s.afterLifecycle(w, r, name, "retired", s.store.RetireTemplate(r.Context(), name, store.UserActor(u)))
}

func (s *Server) afterLifecycle(w http.ResponseWriter, r *http.Request, name, saved string, err error) error {
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/platform/templates/"+url.PathEscape(name)+"?saved="+saved, http.StatusSeeOther)
	return nil
}

// templateWithdraw withdraws one version of a template: it builds no more
// VMs. A missing note shows the version page again with the problem at the
// note field; the current version and a rollout's target are refused (409)
// with what to do instead.
func (s *Server) templateWithdraw(w http.ResponseWriter, r *http.Request) error {
	t, tv, err := s.templateAndVersion(r, chi.URLParam(r, "version"))
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	note := r.PostFormValue("note")
	err = s.store.WithdrawVersion(r.Context(), t.Name, tv.Version, note, store.UserActor(u))
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		v, err := s.versionView(r, t, tv)
		if err != nil {
			return err
		}
		v.Errors, v.Note = verr, note
		return render(w, r, http.StatusUnprocessableEntity, versionPage(v))
	}
	return s.afterVersionChange(w, r, t.Name, tv.Version, "withdrawn", err)
}

// templateReinstate undoes a withdrawal.
func (s *Server) templateReinstate(w http.ResponseWriter, r *http.Request) error {
	t, tv, err := s.templateAndVersion(r, chi.URLParam(r, "version"))
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	return s.afterVersionChange(w, r, t.Name, tv.Version, "reinstated",
		s.store.ReinstateVersion(r.Context(), t.Name, tv.Version, store.UserActor(u)))
}

func (s *Server) afterVersionChange(w http.ResponseWriter, r *http.Request, name string, version int, saved string, err error) error {
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/platform/templates/"+url.PathEscape(name)+"/versions/"+strconv.Itoa(version)+"?saved="+saved, http.StatusSeeOther)
	return nil
}
