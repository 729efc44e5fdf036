package web

import (
	"net/http"
	"slices"
	"strings"

	"paddock/internal/store"
)

// catalog lists the templates the user's team may request, filtered by OS,
// tag and a text search.
func (s *Server) catalog(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	all, err := s.store.Templates(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	v := catalogView{Base: s.viewBase(r, "Catalog"), Q: strings.TrimSpace(q.Get("q")), OS: q.Get("os"), Tag: q.Get("tag"), CanAsk: canRequest(u)}
	for _, t := range offered(all, u) {
		if !slices.Contains(v.OSes, t.Spec.OSFamily) {
			v.OSes = append(v.OSes, t.Spec.OSFamily)
		}
		for _, tag := range t.Spec.Tags {
			if !slices.Contains(v.Tags, tag) {
				v.Tags = append(v.Tags, tag)
			}
		}
		if v.OS != "" && t.Spec.OSFamily != v.OS || v.Tag != "" && !slices.Contains(t.Spec.Tags, v.Tag) {
			continue
		}
		if v.Q != "" && !matches(t.Spec, v.Q) {
			continue
		}
		v.Templates = append(v.Templates, cardOf(t))
	}
	slices.Sort(v.OSes)
	slices.Sort(v.Tags)
	return render(w, r, http.StatusOK, catalogPage(v))
}

// offered keeps the templates open to new requests from u's team; the
// platform team sees every template that is not deprecated.
func offered(all []store.Template, u store.User) []store.Template {
	var out []store.Template
	for _, t := range all {
		if t.DeprecatedAt != nil {
			continue
		}
		if u.Role != store.RolePlatform && !t.Spec.AllowsTeam(u.TeamName) {
			continue
		}
		out = append(out, t)
	}
	return out
}

func matches(t store.TemplateSpec, q string) bool {
	q = strings.ToLower(q)
	for _, s := range append([]string{t.Name, t.DisplayName, t.Description, t.OSFamily}, t.Tags...) {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}
