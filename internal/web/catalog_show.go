package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// templateDetails is what a template gives a VM, in words, for the catalog's
// detail page and the platform team's template page.
type templateDetails struct {
	SourceKind string
	SourceRef  string
	Disk       string
	Sizes      []sizeDetail
	SSHUser    string
	CloudInit  string
	MaxLease   string
	Approval   string
	Teams      string
}

type sizeDetail struct {
	Name, CPU, Memory, Instancetype, Preference string
}

func detailsOf(sp store.TemplateSpec) templateDetails {
	d := templateDetails{SSHUser: sp.SSHUser, CloudInit: sp.CloudInit, MaxLease: nouns(sp.MaxLeaseDays, "day", "days"),
		Teams: "Every team"}
	img := sp.Image
	switch img.Kind() {
	case "containerDisk":
		d.SourceKind, d.SourceRef = "Container disk image", img.ContainerDisk
		d.Disk = "Ephemeral: the root disk is reset whenever the VM restarts."
	case "registry":
		d.SourceKind, d.SourceRef = "Imported from a container registry", img.Registry
	case "http":
		d.SourceKind, d.SourceRef = "Imported from an HTTP(S) URL", img.HTTP
	case "dataSource":
		d.SourceKind, d.SourceRef = "Cloned from a golden image (DataSource)", img.DataSource.Namespace+"/"+img.DataSource.Name
	}
	if !img.Ephemeral() {
		d.Disk = fmt.Sprintf("Persistent, %d GiB: kept across restarts until the VM is deleted.", sp.RootDiskGiB)
	}
	for _, sz := range sp.Sizes {
		cpu, mem := sz.Resources()
		d.Sizes = append(d.Sizes, sizeDetail{Name: sz.Name, CPU: fmt.Sprintf("%d", cpu), Memory: memString(mem),
			Instancetype: sz.Instancetype, Preference: sz.Preference})
	}
	if sp.AutoApprove {
		d.Approval = "Approved automatically for a lease of up to " + nouns(sp.MaxLeaseDays, "day", "days") + "; a longer lease waits for approval."
	} else {
		d.Approval = "Every request waits for approval."
	}
	if len(sp.Teams) > 0 {
		d.Teams = strings.Join(sp.Teams, ", ")
	}
	return d
}

// catalogDetailView is a template's page in the developers' catalog.
type catalogDetailView struct {
	Base    base
	Card    templateCard
	Details templateDetails
	CanAsk  bool
	Offered bool
	Request string
}

// catalogShow shows what a template includes, with a Request button. It
// shows templates the user's team may use; deprecated ones say so and take
// no requests; retired ones are not found.
func (s *Server) catalogShow(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	t, err := s.store.TemplateByName(r.Context(), chi.URLParam(r, "name"))
	if errors.Is(err, store.ErrNotFound) || err == nil && (t.RetiredAt != nil || !canSeeTemplate(u, t)) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	v := catalogDetailView{Base: s.viewBase(r, t.Spec.DisplayName), Card: cardOf(t), Details: detailsOf(t.Spec),
		CanAsk: canRequest(u) && t.DeprecatedAt == nil && t.Spec.AllowsTeam(u.TeamName), Offered: t.DeprecatedAt == nil,
		Request: "/requests/new?template=" + t.Name}
	return render(w, r, http.StatusOK, catalogDetailPage(v))
}
