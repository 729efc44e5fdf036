package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"

	"github.com/go-chi/chi/v5"

	"paddock/internal/provision"
	"paddock/internal/store"
)

var notFileName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// exportLink offers one team's manifests on the VM list.
type exportLink struct {
	Team string
	URL  string
}

// exportLinks lists the teams whose manifests u may download.
func (s *Server) exportLinks(ctx context.Context, u store.User) ([]exportLink, error) {
	teams, err := s.store.Teams(ctx)
	if err != nil {
		return nil, err
	}
	var out []exportLink
	for _, t := range teams {
		if canExportTeam(u, t.ID) {
			out = append(out, exportLink{Team: t.Name, URL: "/teams/" + url.PathEscape(t.Name) + "/manifests.zip"})
		}
	}
	return out, nil
}

// teamManifests downloads a team's VMs as a zip of a folder of manifests
// for version control: one VirtualMachine per file and a kustomization.yaml.
func (s *Server) teamManifests(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "team")
	teams, err := s.store.Teams(r.Context())
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	var team store.Team
	for _, t := range teams {
		if t.Name == name {
			team = t
		}
	}
	// A team the user may not export is not found, like a request they may not see.
	if team.ID == 0 || !canExportTeam(u, team.ID) {
		return errNotFound
	}
	rs, err := s.store.TeamManifests(r.Context(), team.ID)
	if err != nil {
		return err
	}
	files, err := provision.Export(team.Name, rs)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="paddock-%s-manifests.zip"`,
		notFileName.ReplaceAllString(team.Name, "_")))
	return provision.WriteZip(w, team.Name, files)
}
