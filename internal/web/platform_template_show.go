package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
	"paddock/internal/templatefile"
)

// templateView is one template's page for the platform team: status,
// actions, usage per version and the version history.
type templateView struct {
	Base     base
	T        store.Template
	Card     templateCard
	Details  templateDetails
	Versions []versionRow
	Saved    string
	// Errors holds the deprecation form's problems.
	Errors    *store.ValidationError
	Note      string
	VMs       int
	Outdated  int
	UsageText string
	Path      string
}

type versionRow struct {
	Version   int
	Published string
	By        string
	Note      string
	VMs       int
	Running   int
	Current   bool
	// Withdrawn says who withdrew the version, when and why; "" when not.
	Withdrawn string
}

func (s *Server) templateShow(w http.ResponseWriter, r *http.Request) error {
	v, err := s.templateView(r, nil, "")
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("saved") {
	case "created":
		v.Saved = fmt.Sprintf("Created %s: version 1 is published and open to requests.", v.T.Name)
	case "published":
		v.Saved = fmt.Sprintf("Published version %d. New requests use it; existing VMs keep their version.", v.T.Version)
	case "unchanged":
		v.Saved = fmt.Sprintf("Nothing changed, so no version was published; version %d is still current.", v.T.Version)
	case "deprecated":
		v.Saved = "Deprecated: the template is hidden from new requests; existing VMs show your note."
	case "restored":
		v.Saved = "Restored: the template is open to new requests again."
	case "retired":
		v.Saved = "Retired: the template is gone from every list; existing VMs keep their pinned version."
	}
	return render(w, r, http.StatusOK, templatePage(v))
}

func (s *Server) templateView(r *http.Request, verr *store.ValidationError, note string) (templateView, error) {
	t, err := s.store.TemplateByName(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		return templateView{}, err
	}
	versions, err := s.store.TemplateVersions(r.Context(), t.ID)
	if err != nil {
		return templateView{}, err
	}
	usage, err := s.store.TemplateUsage(r.Context(), t.ID)
	if err != nil {
		return templateView{}, err
	}
	v := templateView{Base: s.viewBase(r, t.Spec.DisplayName), T: t, Card: cardOf(t), Details: detailsOf(t.Spec),
		Errors: verr, Note: note, Path: "/platform/templates/" + url.PathEscape(t.Name)}
	if v.Note == "" {
		v.Note = t.DeprecationNote
	}
	for _, tv := range versions {
		u := usage[tv.Version]
		by := tv.CreatedBy
		if by == "" {
			by = "templates as code"
		}
		v.Versions = append(v.Versions, versionRow{Version: tv.Version, Published: fmtTime(tv.CreatedAt), By: by, Note: tv.Note,
			VMs: u.VMs, Running: u.Running, Current: tv.Version == t.Version, Withdrawn: withdrawnText(tv)})
		v.VMs += u.VMs
		if tv.Version != t.Version {
			v.Outdated += u.VMs
		}
	}
	v.UsageText = nouns(v.VMs, "VM uses", "VMs use") + " this template."
	if v.Outdated > 0 {
		v.UsageText = fmt.Sprintf("%s this template; %d of them on older versions, whose owners see an \"outdated\" badge.", nouns(v.VMs, "VM uses", "VMs use"), v.Outdated)
	}
	return v, nil
}

// withdrawnText says who withdrew tv, when and why; "" when it was not.
func withdrawnText(tv store.TemplateVersion) string {
	if !tv.Withdrawn() {
		return ""
	}
	by := tv.WithdrawnBy
	if by == "" {
		by = "the platform team"
	}
	return fmt.Sprintf("Withdrawn by %s at %s: %s", by, fmtTime(*tv.WithdrawnAt), tv.WithdrawnNote)
}

// versionView shows one version's YAML, and its withdrawal.
type versionView struct {
	Base    base
	T       store.Template
	V       store.TemplateVersion
	YAML    string
	Path    string
	Usage   store.VersionUsage
	Current bool
	// VersionPath is the version's own page; WithdrawnText says who
	// withdrew it and why.
	VersionPath   string
	WithdrawnText string
	Saved         string
	// Errors and Note are the withdrawal form's problems and input.
	Errors *store.ValidationError
	Note   string
}

// templateVersionShow shows one version as YAML, or with ?download=1 sends it
// as a file ready for `portal templates apply`.
func (s *Server) templateVersionShow(w http.ResponseWriter, r *http.Request) error {
	t, tv, err := s.templateAndVersion(r, chi.URLParam(r, "version"))
	if err != nil {
		return err
	}
	if r.URL.Query().Get("download") == "1" {
		b, err := templatefile.Marshal(tv.Spec)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.yaml"`, t.Name))
		_, err = w.Write(b)
		return err
	}
	v, err := s.versionView(r, t, tv)
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("saved") {
	case "withdrawn":
		v.Saved = fmt.Sprintf("Withdrawn: v%d builds no more VMs; VMs on it keep running.", tv.Version)
	case "reinstated":
		v.Saved = fmt.Sprintf("Reinstated: v%d may be used again.", tv.Version)
	}
	return render(w, r, http.StatusOK, versionPage(v))
}

func (s *Server) versionView(r *http.Request, t store.Template, tv store.TemplateVersion) (versionView, error) {
	b, err := templatefile.Marshal(tv.Spec)
	if err != nil {
		return versionView{}, err
	}
	usage, err := s.store.TemplateUsage(r.Context(), t.ID)
	if err != nil {
		return versionView{}, err
	}
	path := "/platform/templates/" + url.PathEscape(t.Name)
	return versionView{Base: s.viewBase(r, fmt.Sprintf("%s version %d", t.Name, tv.Version)), T: t, V: tv, YAML: string(b),
		Path: path, Usage: usage[tv.Version], Current: tv.Version == t.Version,
		VersionPath: path + "/versions/" + strconv.Itoa(tv.Version), WithdrawnText: withdrawnText(tv)}, nil
}

func (s *Server) templateAndVersion(r *http.Request, version string) (store.Template, store.TemplateVersion, error) {
	t, err := s.store.TemplateByName(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		return t, store.TemplateVersion{}, err
	}
	n, err := strconv.Atoi(version)
	if err != nil || n < 1 {
		return t, store.TemplateVersion{}, errNotFound
	}
	tv, err := s.store.TemplateVersion(r.Context(), t.ID, n)
	return t, tv, err
}

// templateRollback publishes an old version's spec as a new version.
func (s *Server) templateRollback(w http.ResponseWriter, r *http.Request) error {
	t, tv, err := s.templateAndVersion(r, chi.URLParam(r, "version"))
	if err != nil {
		return err
	}
	if tv.Withdrawn() {
		// Publishing it again would undo the withdrawal under a new number.
		return errStatus(http.StatusConflict, fmt.Sprintf("Version %d was withdrawn (%s), so it is not published again. Reinstate it on its page if it was withdrawn by mistake.",
			tv.Version, tv.WithdrawnNote))
	}
	u, _ := userFrom(r.Context())
	res, err := s.store.PublishTemplateChange(r.Context(), store.Publish{Spec: tv.Spec, Actor: store.UserActor(u),
		Note: fmt.Sprintf("back to version %d", tv.Version), Base: t.Version})
	if err != nil {
		return err
	}
	saved := "published"
	if !res.Changed {
		saved = "unchanged"
	}
	http.Redirect(w, r, "/platform/templates/"+url.PathEscape(t.Name)+"?saved="+saved, http.StatusSeeOther)
	return nil
}

// diffView compares two versions of a template.
type diffView struct {
	Base     base
	T        store.Template
	From, To int
	Versions []int
	Fields   []string
	Hunks    []templatefile.Hunk
	Path     string
	Whole    bool
}

// templateDiff shows a line diff of the YAML of two versions (?from=&to=),
// by default the previous and the current one.
func (s *Server) templateDiff(w http.ResponseWriter, r *http.Request) error {
	t, err := s.store.TemplateByName(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, to := max(t.Version-1, 1), t.Version
	if q.Get("from") != "" || q.Get("to") != "" {
		from, _ = strconv.Atoi(q.Get("from"))
		to, _ = strconv.Atoi(q.Get("to"))
	}
	_, a, err := s.templateAndVersion(r, strconv.Itoa(from))
	if err != nil {
		return versionMissing(err, from)
	}
	_, b, err := s.templateAndVersion(r, strconv.Itoa(to))
	if err != nil {
		return versionMissing(err, to)
	}
	lines, err := templatefile.DiffSpecs(a.Spec, b.Spec)
	if err != nil {
		return err
	}
	v := diffView{Base: s.viewBase(r, fmt.Sprintf("%s: version %d → %d", t.Name, from, to)), T: t, From: from, To: to,
		Fields: store.ChangedFields(a.Spec, b.Spec), Path: "/platform/templates/" + url.PathEscape(t.Name), Whole: q.Get("context") == "all"}
	context := 3
	if v.Whole {
		context = len(lines)
	}
	v.Hunks = templatefile.Hunks(lines, context)
	for i := t.Version; i >= 1; i-- {
		v.Versions = append(v.Versions, i)
	}
	return render(w, r, http.StatusOK, diffPage(v))
}

func versionMissing(err error, n int) error {
	if err == errNotFound || err == store.ErrNotFound {
		return errStatus(http.StatusNotFound, fmt.Sprintf("This template has no version %d.", n))
	}
	return err
}

func diffClass(op templatefile.DiffOp) string {
	switch op {
	case templatefile.DiffAdd:
		return "diff-add"
	case templatefile.DiffDel:
		return "diff-del"
	}
	return "diff-keep"
}

func diffSign(op templatefile.DiffOp) string { return []string{" ", "-", "+"}[op] }

func lineNo(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
