package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"paddock/internal/store"
)

// requestNew shows the request form, for the template in ?template=.
func (s *Server) requestNew(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if !canRequest(u) {
		return errStatus(http.StatusForbidden, "You are not in a team, so you cannot request VMs. Ask the platform team to add you to one.")
	}
	q := r.URL.Query()
	form := requestForm{Template: q.Get("template"), Size: q.Get("size"), Name: q.Get("name"),
		SSHPublicKey: q.Get("sshPublicKey"), LeaseDays: q.Get("leaseDays"), Justification: q.Get("justification"),
		Replicas: q.Get("replicas")}
	v, err := s.formView(r, form, nil)
	if err != nil {
		return err
	}
	if v.Selected != nil && form.LeaseDays == "" {
		v.Form.LeaseDays = strconv.Itoa(min(7, v.Selected.MaxLeaseDays))
	}
	return render(w, r, http.StatusOK, requestFormPage(v))
}

func (s *Server) formView(r *http.Request, form requestForm, verr *store.ValidationError) (requestFormView, error) {
	u, _ := userFrom(r.Context())
	all, err := s.store.Templates(r.Context())
	if err != nil {
		return requestFormView{}, err
	}
	v := requestFormView{Base: s.viewBase(r, "Request a VM"), Form: form, Errors: verr}
	for _, t := range offered(all, u) {
		c := cardOf(t)
		v.Templates = append(v.Templates, c)
		if t.Name == form.Template {
			v.Selected = &c
			if verr == nil && s.cfg.ClusterLacks != nil {
				// Said as soon as the template is picked, not only once the
				// form is sent.
				replicas, _ := strconv.Atoi(form.Replicas)
				if lacks := s.cfg.ClusterLacks(t.Spec, replicas > 1); len(lacks) > 0 {
					v.Errors = &store.ValidationError{Fields: lacks}
				}
			}
		}
	}
	if v.Selected != nil && u.TeamID != nil {
		if v.Quota, err = s.quotaPreview(r, *u.TeamID, *v.Selected, form); err != nil {
			return requestFormView{}, err
		}
	}
	return v, nil
}

// requestCreate validates and submits the form. An invalid form is shown
// again with each problem at its field (422); a valid one goes to the new
// request's page (303).
func (s *Server) requestCreate(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if !canRequest(u) {
		return errStatus(http.StatusForbidden, "You are not in a team, so you cannot request VMs.")
	}
	if err := r.ParseForm(); err != nil {
		return formError(err)
	}
	form := requestForm{
		Template: r.PostFormValue("template"), Size: r.PostFormValue("size"),
		Name: strings.TrimSpace(r.PostFormValue("name")), SSHPublicKey: r.PostFormValue("sshPublicKey"),
		LeaseDays: strings.TrimSpace(r.PostFormValue("leaseDays")), Justification: r.PostFormValue("justification"),
		Replicas: strings.TrimSpace(r.PostFormValue("replicas")),
	}
	replicas, notNumber := 1, false
	if form.Replicas != "" {
		var err error
		replicas, err = strconv.Atoi(form.Replicas)
		notNumber = err != nil
		if err != nil || replicas < 1 {
			replicas = -1 // refused by SubmitRequest, naming the limits
		}
	}
	lease, err := strconv.Atoi(form.LeaseDays)
	if err != nil {
		lease = -1
	}
	req, err := s.store.SubmitRequest(r.Context(), store.NewRequest{
		TeamID: *u.TeamID, Requester: u, Template: form.Template, Size: form.Size, Name: form.Name,
		SSHPublicKey: form.SSHPublicKey, LeaseDays: lease, Justification: form.Justification,
		IdempotencyKey: r.PostFormValue("idempotencyKey"), Replicas: replicas,
		ClusterLacks: s.cfg.ClusterLacks,
	})
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		if lease == -1 && form.LeaseDays != "" {
			for i, f := range verr.Fields {
				if f.Field == "leaseDays" {
					verr.Fields[i].Message = "must be a whole number of days"
				}
			}
		}
		if notNumber {
			for i, f := range verr.Fields {
				if f.Field == "replicas" {
					verr.Fields[i].Message = fmt.Sprintf("must be a whole number of VMs, from 1 to %d", store.MaxPoolReplicas)
				}
			}
		}
		v, err := s.formView(r, form, verr)
		if err != nil {
			return err
		}
		v.Base.URL = "/requests/new?template=" + url.QueryEscape(form.Template)
		return render(w, r, http.StatusUnprocessableEntity, requestFormPage(v))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/requests/"+strconv.FormatInt(req.ID, 10), http.StatusSeeOther)
	return nil
}
