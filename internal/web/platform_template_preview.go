package web

import (
	"net/http"
	"path"
	"slices"
	"strings"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/static"
)

// previewView is the live preview beside the template form: the
// VirtualMachine a request for one of the sizes would create.
type previewView struct {
	Sizes    []string
	Size     string
	Manifest string
	// Problems are shown instead of the manifest while the form is invalid.
	Problems []store.FieldError
	Example  string
}

// previewSampleKey stands in for the requester's key in the preview.
const previewSampleKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPreviewOnlyTheRequestersKeyGoesHere example@paddock"

// templatePreview renders the preview fragment for the posted form. It
// answers 200 even for an invalid form, whose problems it lists, because
// htmx swaps only successful responses.
func (s *Server) templatePreview(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return errStatus(http.StatusBadRequest, "The form could not be read; it may be too large.")
	}
	f := formOfRequest(r)
	next := 1
	if f.Base > 0 {
		next = f.Base + 1
	}
	w.Header().Set("Cache-Control", "no-store")
	return render(w, r, http.StatusOK, templatePreviewPart(s.preview(r, f, next)))
}

// preview renders what a request by the signed-in user, for the chosen size
// of the form's template, would create as version.
func (s *Server) preview(r *http.Request, f templateForm, version int) previewView {
	var v previewView
	for _, row := range f.Sizes {
		if row.Name != "" {
			v.Sizes = append(v.Sizes, row.Name)
		}
	}
	v.Size = f.PreviewSize
	if !slices.Contains(v.Sizes, v.Size) && len(v.Sizes) > 0 {
		v.Size = v.Sizes[0]
	}
	sp, verr := f.spec()
	if verr != nil {
		v.Problems = verr.Fields
		return v
	}
	u, _ := userFrom(r.Context())
	req := store.Request{
		ID: 1, Name: "example-vm", Namespace: "example-team", TeamName: "example-team", RequesterLogin: u.Login,
		TemplateName: sp.Name, TemplateVersion: version, Size: v.Size, SSHPublicKey: previewSampleKey, LeaseDays: sp.MaxLeaseDays,
	}
	if u.TeamID != nil {
		if t, err := s.store.TeamByID(r.Context(), *u.TeamID); err == nil {
			req.TeamName, req.Namespace = t.Name, t.Namespace
		}
	}
	v.Example = "Request #1 \"example-vm\" by " + u.Login + " in namespace " + req.Namespace + ", version " + itoa(version) +
		"; the request id, VM name, namespace, owner and SSH key come from each real request."
	vm, err := provision.Render(sp, req)
	if err == nil {
		v.Manifest, err = provision.Manifest(vm)
	}
	if err != nil {
		v.Problems = []store.FieldError{{Field: "template", Message: "cannot be rendered: " + err.Error()}}
	}
	return v
}

// logoNames lists the logos shipped in static/logos, by name.
func logoNames() []string {
	var out []string
	for _, p := range static.Glob("logos/*.svg") {
		out = append(out, strings.TrimSuffix(path.Base(p), ".svg"))
	}
	return out
}
