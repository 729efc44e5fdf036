package web

import (
	"net/http"
	"strings"

	"paddock/internal/store"
)

// templatesView is the platform team's list of templates.
type templatesView struct {
	Base        base
	Templates   []templateRow
	ShowRetired bool
	Retired     int
	Notice      []string
}

type templateRow struct {
	Name        string
	DisplayName string
	OSFamily    string
	Source      string
	Version     int
	Status      string
	Note        string
	VMs         int
	Outdated    int
	Published   string
}

// platformTemplates lists every template with its status and usage;
// retired ones only on request (?retired=1).
func (s *Server) platformTemplates(w http.ResponseWriter, r *http.Request) error {
	sums, err := s.store.TemplateSummaries(r.Context())
	if err != nil {
		return err
	}
	v := templatesView{Base: s.viewBase(r, "Templates"), ShowRetired: r.URL.Query().Get("retired") == "1"}
	for _, t := range sums {
		if t.RetiredAt != nil {
			v.Retired++
			if !v.ShowRetired {
				continue
			}
		}
		v.Templates = append(v.Templates, templateRow{
			Name: t.Name, DisplayName: t.Spec.DisplayName, OSFamily: t.Spec.OSFamily, Source: sourceKind(t.Spec.Image),
			Version: t.Version, Status: t.Status(), Note: t.DeprecationNote, VMs: t.VMs, Outdated: t.Outdated,
			Published: fmtTime(t.PublishedAt),
		})
	}
	// After an import, the list says what was published (names from our
	// own redirect; shown as text only).
	if p := r.URL.Query().Get("published"); p != "" {
		for _, item := range strings.Split(p, ",") {
			if name, ver, ok := strings.Cut(item, ":"); ok {
				v.Notice = append(v.Notice, name+" version "+ver)
			}
		}
	}
	return render(w, r, http.StatusOK, templatesPage(v))
}

// sourceKind names an image source kind in words.
func sourceKind(img store.ImageSource) string {
	switch img.Kind() {
	case "containerDisk":
		return "Container disk"
	case "registry":
		return "Registry import"
	case "http":
		return "HTTP import"
	case "dataSource":
		return "Golden-image clone"
	}
	return "—"
}

func statusClass(status string) string { return "badge status-" + status }
