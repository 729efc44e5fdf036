package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// The platform team's template form: create, clone and edit (which
// publishes a new version) share it. The form's field names are the spec's
// field paths, so that the store's validation messages land at their fields.

// templateForm is the form as typed: every value is kept as text so that an
// invalid form is shown again exactly as it was.
type templateForm struct {
	Name, DisplayName, Description, OSFamily, Logo, Tags string
	ContainerDisk, Registry, HTTP, DataSourceNamespace   string
	DataSourceName, RootDiskGiB, SSHUser, CloudInit      string
	Teams                                                []string
	MaxLeaseDays, MaxAutoReplicas                        string
	AutoApprove                                          bool
	Sizes                                                []sizeRow
	Note                                                 string
	// Base is the version an edit started from.
	Base        int
	PreviewSize string
}

// sizeRow is one row of the sizes table.
type sizeRow struct {
	Name, Instancetype, Preference, CPU, MemoryMiB string
}

func (r sizeRow) empty() bool { return r == sizeRow{} }

// emptySizeRows is how many blank rows the form offers for new sizes.
const emptySizeRows = 2

func formOfSpec(sp store.TemplateSpec) templateForm {
	f := templateForm{
		Name: sp.Name, DisplayName: sp.DisplayName, Description: sp.Description, OSFamily: sp.OSFamily, Logo: sp.Logo,
		Tags: strings.Join(sp.Tags, ", "), ContainerDisk: sp.Image.ContainerDisk, Registry: sp.Image.Registry, HTTP: sp.Image.HTTP,
		SSHUser: sp.SSHUser, CloudInit: sp.CloudInit, Teams: slices.Clone(sp.Teams), AutoApprove: sp.AutoApprove,
		MaxLeaseDays: numText(sp.MaxLeaseDays), RootDiskGiB: numText(sp.RootDiskGiB), MaxAutoReplicas: numText(sp.MaxAutoReplicas),
	}
	if ds := sp.Image.DataSource; ds != nil {
		f.DataSourceNamespace, f.DataSourceName = ds.Namespace, ds.Name
	}
	for _, s := range sp.Sizes {
		f.Sizes = append(f.Sizes, sizeRow{Name: s.Name, Instancetype: s.Instancetype, Preference: s.Preference,
			CPU: numText(s.CPU), MemoryMiB: numText(s.MemoryMiB)})
	}
	return f
}

func numText(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// formOfRequest reads the posted form. Rows of the sizes table left blank
// are dropped, so that row i is sizes[i] in validation messages.
func formOfRequest(r *http.Request) templateForm {
	p := r.PostForm
	v := func(k string) string { return strings.TrimSpace(p.Get(k)) }
	f := templateForm{
		Name: v("name"), DisplayName: v("displayName"), Description: v("description"), OSFamily: v("osFamily"),
		Logo: v("logo"), Tags: v("tags"), ContainerDisk: v("image.containerDisk"), Registry: v("image.registry"),
		HTTP: v("image.http"), DataSourceNamespace: v("image.dataSource.namespace"), DataSourceName: v("image.dataSource.name"),
		RootDiskGiB: v("rootDiskGiB"), SSHUser: v("sshUser"), CloudInit: strings.ReplaceAll(p.Get("cloudInit"), "\r\n", "\n"),
		MaxLeaseDays: v("maxLeaseDays"), MaxAutoReplicas: v("maxAutoReplicas"), AutoApprove: p.Get("autoApprove") != "", Note: v("note"), PreviewSize: v("previewSize"),
	}
	f.Base, _ = strconv.Atoi(p.Get("base"))
	for _, t := range p["teams"] {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(f.Teams, t) {
			f.Teams = append(f.Teams, t)
		}
	}
	col := func(k string, i int) string {
		if i < len(p[k]) {
			return strings.TrimSpace(p[k][i])
		}
		return ""
	}
	for i := range len(p["size.name"]) {
		row := sizeRow{Name: col("size.name", i), Instancetype: col("size.instancetype", i), Preference: col("size.preference", i),
			CPU: col("size.cpu", i), MemoryMiB: col("size.memoryMiB", i)}
		if !row.empty() {
			f.Sizes = append(f.Sizes, row)
		}
	}
	return f
}

// spec turns the form into a template spec and validates it. Numbers that
// are not numbers are reported at their field, before the spec's own rules.
func (f templateForm) spec() (store.TemplateSpec, *store.ValidationError) {
	verr := &store.ValidationError{}
	num := func(field, s string) int {
		if s == "" {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			verr.Add(field, "must be a whole number")
		}
		return n
	}
	sp := store.TemplateSpec{
		Name: f.Name, DisplayName: f.DisplayName, Description: f.Description, OSFamily: f.OSFamily, Logo: f.Logo,
		Image:   store.ImageSource{ContainerDisk: f.ContainerDisk, Registry: f.Registry, HTTP: f.HTTP},
		SSHUser: f.SSHUser, CloudInit: f.CloudInit, Teams: f.Teams, AutoApprove: f.AutoApprove,
		RootDiskGiB: num("rootDiskGiB", f.RootDiskGiB), MaxLeaseDays: num("maxLeaseDays", f.MaxLeaseDays),
		MaxAutoReplicas: num("maxAutoReplicas", f.MaxAutoReplicas),
	}
	if sp.CloudInit != "" && !strings.HasSuffix(sp.CloudInit, "\n") {
		sp.CloudInit += "\n"
	}
	if strings.TrimSpace(sp.CloudInit) == "" {
		sp.CloudInit = ""
	}
	if f.DataSourceNamespace != "" || f.DataSourceName != "" {
		sp.Image.DataSource = &store.DataSourceRef{Namespace: f.DataSourceNamespace, Name: f.DataSourceName}
	}
	for _, t := range strings.Split(f.Tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			sp.Tags = append(sp.Tags, t)
		}
	}
	for i, row := range f.Sizes {
		sp.Sizes = append(sp.Sizes, store.Size{Name: row.Name, Instancetype: row.Instancetype, Preference: row.Preference,
			CPU: num(fmt.Sprintf("sizes[%d].cpu", i), row.CPU), MemoryMiB: num(fmt.Sprintf("sizes[%d].memoryMiB", i), row.MemoryMiB)})
	}
	var rules *store.ValidationError
	if errors.As(sp.Validate(), &rules) {
		for _, fe := range rules.Fields {
			if verr.For(fe.Field) == "" {
				verr.Fields = append(verr.Fields, fe)
			}
		}
	}
	if len(f.Note) > store.MaxVersionNoteLen {
		verr.Add("note", "must be at most %d characters", store.MaxVersionNoteLen)
	}
	if len(verr.Fields) == 0 {
		return sp, nil
	}
	return sp, verr
}

// templateFormView is the create, clone and edit page.
type templateFormView struct {
	Base          base
	Heading       string
	Mode          string // "new", "clone" or "edit"
	Action        string
	Form          templateForm
	Rows          []sizeRow
	Errors        *store.ValidationError
	TeamChoices   []string
	Logos         []string
	OSFamilies    []string
	Instancetypes []string
	Preview       previewView
	// Conflict explains that someone published while this edit was open.
	Conflict string
	DiffURL  string
	Cancel   string
}

func (v templateFormView) err(field string) string { return v.Errors.For(field) }

// rowErr returns the problems of size row i that have no cell of their own.
func (v templateFormView) rowErr(i int) string { return v.Errors.For(fmt.Sprintf("sizes[%d]", i)) }

func (v templateFormView) cellErr(i int, col string) string {
	return v.Errors.For(fmt.Sprintf("sizes[%d].%s", i, col))
}

// teamsErr gathers the problems of the teams list, which are per entry.
func (v templateFormView) teamsErr() string {
	if v.Errors == nil {
		return ""
	}
	var msgs []string
	for _, f := range v.Errors.Fields {
		if strings.HasPrefix(f.Field, "teams[") {
			msgs = append(msgs, f.Message)
		}
	}
	return strings.Join(msgs, "; ")
}

func (s *Server) templateFormView(r *http.Request, mode string, f templateForm, verr *store.ValidationError) (templateFormView, error) {
	v := templateFormView{Base: s.viewBase(r, ""), Mode: mode, Form: f, Errors: verr, Instancetypes: store.KnownInstancetypes(),
		Logos: logoNames(), Action: "/platform/templates", Cancel: "/platform/templates"}
	switch mode {
	case "new":
		v.Heading = "New template"
	case "clone":
		v.Heading = "New template (copy)"
	case "edit":
		v.Heading = "Edit " + f.Name
		v.Action = "/platform/templates/" + url.PathEscape(f.Name)
		v.Cancel = v.Action
	}
	v.Base.Title = v.Heading
	teams, err := s.store.Teams(r.Context())
	if err != nil {
		return v, err
	}
	for _, t := range teams {
		v.TeamChoices = append(v.TeamChoices, t.Name)
	}
	for _, t := range f.Teams { // keep teams the spec names that do not exist (yet)
		if !slices.Contains(v.TeamChoices, t) {
			v.TeamChoices = append(v.TeamChoices, t)
		}
	}
	all, err := s.store.Templates(r.Context())
	if err != nil {
		return v, err
	}
	for _, t := range all {
		if !slices.Contains(v.OSFamilies, t.Spec.OSFamily) {
			v.OSFamilies = append(v.OSFamilies, t.Spec.OSFamily)
		}
	}
	slices.Sort(v.OSFamilies)
	v.Rows = append(slices.Clone(f.Sizes), make([]sizeRow, emptySizeRows)...)
	next := 1
	if mode == "edit" {
		next = f.Base + 1
	}
	v.Preview = s.preview(r, f, next)
	return v, nil
}

func (s *Server) renderTemplateForm(w http.ResponseWriter, r *http.Request, status int, mode string, f templateForm, verr *store.ValidationError) error {
	v, err := s.templateFormView(r, mode, f, verr)
	if err != nil {
		return err
	}
	return render(w, r, status, templateFormPage(v))
}

// templateNew shows an empty form with one size row and a cloud-config stub.
func (s *Server) templateNew(w http.ResponseWriter, r *http.Request) error {
	f := templateForm{MaxLeaseDays: "7", CloudInit: "#cloud-config\n", Sizes: []sizeRow{{Name: "small", Instancetype: "u1.small"}}}
	return s.renderTemplateForm(w, r, http.StatusOK, "new", f, nil)
}

// templateClone shows the form filled from an existing template's current
// version, under a new name.
func (s *Server) templateClone(w http.ResponseWriter, r *http.Request) error {
	t, err := s.store.TemplateByName(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		return err
	}
	f := formOfSpec(t.Spec)
	f.Name = cloneName(t.Name)
	f.DisplayName += " (copy)"
	return s.renderTemplateForm(w, r, http.StatusOK, "clone", f, nil)
}

func cloneName(name string) string {
	const suffix = "-copy"
	if len(name)+len(suffix) > 63 {
		name = strings.TrimRight(name[:63-len(suffix)], "-")
	}
	return name + suffix
}

// templateEdit shows the form filled from the current version.
func (s *Server) templateEdit(w http.ResponseWriter, r *http.Request) error {
	t, err := s.store.TemplateByName(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		return err
	}
	if t.RetiredAt != nil {
		return errStatus(http.StatusConflict, "This template is retired. Restore it on its page before editing it.")
	}
	f := formOfSpec(t.Spec)
	f.Base = t.Version
	return s.renderTemplateForm(w, r, http.StatusOK, "edit", f, nil)
}

// templateCreate publishes version 1 of a new template (from the new and
// clone forms).
func (s *Server) templateCreate(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return errStatus(http.StatusBadRequest, "The form could not be read; it may be too large.")
	}
	f := formOfRequest(r)
	mode := "new"
	if r.PostFormValue("mode") == "clone" {
		mode = "clone"
	}
	sp, verr := f.spec()
	if verr != nil {
		return s.renderTemplateForm(w, r, http.StatusUnprocessableEntity, mode, f, verr)
	}
	u, _ := userFrom(r.Context())
	_, err := s.store.PublishTemplateChange(r.Context(), store.Publish{Spec: sp, Actor: store.UserActor(u), Note: f.Note, New: true})
	if errors.As(err, &verr) {
		return s.renderTemplateForm(w, r, http.StatusUnprocessableEntity, mode, f, verr)
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/platform/templates/"+url.PathEscape(sp.Name)+"?saved=created", http.StatusSeeOther)
	return nil
}

// templateUpdate publishes the edited form as a new version, when it
// differs from the current one and nobody published in between.
func (s *Server) templateUpdate(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	cur, err := s.store.TemplateByName(r.Context(), name)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return errStatus(http.StatusBadRequest, "The form could not be read; it may be too large.")
	}
	f := formOfRequest(r)
	f.Name = name // the name is the template's identity; it cannot be edited
	if f.Base == 0 {
		f.Base = cur.Version
	}
	sp, verr := f.spec()
	if verr != nil {
		return s.renderTemplateForm(w, r, http.StatusUnprocessableEntity, "edit", f, verr)
	}
	u, _ := userFrom(r.Context())
	res, err := s.store.PublishTemplateChange(r.Context(), store.Publish{Spec: sp, Actor: store.UserActor(u), Note: f.Note, Base: f.Base})
	switch {
	case errors.As(err, &verr):
		return s.renderTemplateForm(w, r, http.StatusUnprocessableEntity, "edit", f, verr)
	case errors.Is(err, store.ErrConflict):
		return s.editConflict(w, r, f)
	case err != nil:
		return err
	}
	saved := "published"
	if !res.Changed {
		saved = "unchanged"
	}
	http.Redirect(w, r, "/platform/templates/"+url.PathEscape(name)+"?saved="+saved, http.StatusSeeOther)
	return nil
}

// editConflict shows the edit again when another version was published
// while it was open: the edits are kept, the base moves to the new current
// version, and a link shows what the other person changed.
func (s *Server) editConflict(w http.ResponseWriter, r *http.Request, f templateForm) error {
	cur, err := s.store.TemplateByName(r.Context(), f.Name)
	if err != nil {
		return err
	}
	v, err := s.templateFormView(r, "edit", f, nil)
	if err != nil {
		return err
	}
	v.Conflict = fmt.Sprintf("Version %d was published while you were editing version %d. Your changes are kept below and nothing was saved. "+
		"Review what changed, then save again to publish your changes on top of version %d.", cur.Version, f.Base, cur.Version)
	v.DiffURL = fmt.Sprintf("/platform/templates/%s/diff?from=%d&to=%d", url.PathEscape(f.Name), f.Base, cur.Version)
	v.Form.Base = cur.Version
	v.Preview = s.preview(r, v.Form, cur.Version+1)
	return render(w, r, http.StatusConflict, templateFormPage(v))
}
