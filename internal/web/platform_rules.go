package web

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// platformRules shows the approval rules with a form to add or replace one.
func (s *Server) platformRules(w http.ResponseWriter, r *http.Request) error {
	v, err := s.rulesView(r, ruleForm{AutoApprove: true}, nil)
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("saved") {
	case "set":
		v.Saved = "Saved the rule."
	case "deleted":
		v.Saved = "Deleted the rule."
	}
	return render(w, r, http.StatusOK, rulesPage(v))
}

func (s *Server) rulesView(r *http.Request, f ruleForm, verr *store.ValidationError) (rulesView, error) {
	ctx := r.Context()
	rules, err := s.store.ApprovalRules(ctx)
	if err != nil {
		return rulesView{}, err
	}
	teams, err := s.store.Teams(ctx)
	if err != nil {
		return rulesView{}, err
	}
	tpls, err := s.store.Templates(ctx)
	if err != nil {
		return rulesView{}, err
	}
	v := rulesView{Base: s.viewBase(r, "Approval rules"), Rules: rules, Form: f, Errors: verr}
	for _, t := range teams {
		v.Teams = append(v.Teams, t.Name)
	}
	for _, t := range tpls {
		v.Templates = append(v.Templates, t.Name)
		for _, sz := range t.Spec.Sizes {
			if !slices.Contains(v.Sizes, sz.Name) {
				v.Sizes = append(v.Sizes, sz.Name)
			}
		}
	}
	slices.Sort(v.Templates)
	y, err := store.ApprovalRulesYAML(rules)
	if err != nil {
		return rulesView{}, err
	}
	v.YAML = string(y)
	return v, nil
}

// ruleSave creates the rule for a team and template, or replaces it.
func (s *Server) ruleSave(w http.ResponseWriter, r *http.Request) error {
	f := ruleForm{Team: r.PostFormValue("team"), Template: r.PostFormValue("template"),
		MaxSize: strings.TrimSpace(r.PostFormValue("maxSize")), AutoApprove: r.PostFormValue("autoApprove") != ""}
	u, _ := userFrom(r.Context())
	auto := f.AutoApprove
	err := s.store.SetApprovalRule(r.Context(), store.RuleInput{Team: f.Team, Template: f.Template, AutoApprove: &auto, MaxSize: f.MaxSize},
		store.UserActor(u))
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		v, err := s.rulesView(r, f, verr)
		if err != nil {
			return err
		}
		return render(w, r, http.StatusUnprocessableEntity, rulesPage(v))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/platform/rules?saved=set", http.StatusSeeOther)
	return nil
}

// ruleDelete removes a rule.
func (s *Server) ruleDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "ruleID"), 10, 64)
	if err != nil {
		return errNotFound
	}
	u, _ := userFrom(r.Context())
	if err := s.store.DeleteApprovalRule(r.Context(), id, store.UserActor(u)); err != nil {
		return err
	}
	http.Redirect(w, r, "/platform/rules?saved=deleted", http.StatusSeeOther)
	return nil
}

// platformWebhooks lists webhook deliveries that have not succeeded.
func (s *Server) platformWebhooks(w http.ResponseWriter, r *http.Request) error {
	ds, err := s.store.WebhookDeliveries(r.Context(), 200)
	if err != nil {
		return err
	}
	counts, err := s.store.DeliveryCounts(r.Context())
	if err != nil {
		return err
	}
	return render(w, r, http.StatusOK, webhooksPage(webhooksView{Base: s.viewBase(r, "Webhooks"), Deliveries: ds, Counts: counts, Configured: s.cfg.Webhooks}))
}
