package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"paddock/internal/store"
	"paddock/internal/templatefile"
)

// Uploading templates as code: the same files, checks and all-or-nothing
// publish as `portal templates apply`, with a dry-run preview first. The
// preview carries the files in hidden fields and a fingerprint of its plan;
// applying re-checks everything and refuses when the plan changed meanwhile.

// importView is the upload form, its problems, and the dry-run preview.
type importView struct {
	Base     base
	Pasted   string
	Note     string
	Problems []templatefile.Problem
	// Plan is set once the files are valid: what applying would do.
	Plan     []importItem
	Files    []templatefile.File
	PlanHash string
	Changes  int
	// Stale says that the plan differs from the one previewed before.
	Stale bool
}

type importItem struct {
	Name    string
	Where   string
	Action  string // create, publish or unchanged
	Version int
	Was     int
	Fields  []string
	Diff    []templatefile.Hunk
}

// templateImportForm shows the upload form.
func (s *Server) templateImportForm(w http.ResponseWriter, r *http.Request) error {
	return render(w, r, http.StatusOK, importPage(importView{Base: s.viewBase(r, "Import templates")}))
}

// templateImport checks the uploaded or pasted files and shows what applying
// them would do (mode=preview), or applies them (mode=apply) when the plan
// is still the one previewed.
func (s *Server) templateImport(w http.ResponseWriter, r *http.Request) error {
	files, v, err := s.readImport(r)
	if err != nil {
		return err
	}
	if len(v.Problems) > 0 {
		return render(w, r, http.StatusUnprocessableEntity, importPage(v))
	}
	parsed, err := templatefile.Parse(files)
	var fe *templatefile.Error
	if errors.As(err, &fe) {
		v.Problems = fe.Problems
		return render(w, r, http.StatusUnprocessableEntity, importPage(v))
	}
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	specs := make([]store.TemplateSpec, len(parsed))
	for i, p := range parsed {
		specs[i] = p.Spec
	}
	plan, err := s.store.ApplyTemplates(r.Context(), specs, store.UserActor(u), v.Note, true)
	if problems := applyProblems(err, parsed); problems != nil {
		v.Problems = problems
		return render(w, r, http.StatusUnprocessableEntity, importPage(v))
	}
	if err != nil {
		return err
	}
	v.Files = files
	if v.PlanHash, err = planHash(plan, specs, v.Note); err != nil {
		return err
	}
	if err := v.describe(plan, parsed); err != nil {
		return err
	}
	if r.PostFormValue("mode") != "apply" {
		return render(w, r, http.StatusOK, importPage(v))
	}
	if r.PostFormValue("plan") != v.PlanHash {
		v.Stale = true
		return render(w, r, http.StatusConflict, importPage(v))
	}
	done, err := s.store.ApplyTemplates(r.Context(), specs, store.UserActor(u), v.Note, false)
	if problems := applyProblems(err, parsed); problems != nil {
		v.Problems = problems
		return render(w, r, http.StatusUnprocessableEntity, importPage(v))
	}
	if err != nil {
		return err
	}
	var published []string
	for _, d := range done {
		if d.Changed {
			published = append(published, fmt.Sprintf("%s:%d", d.Name, d.Version))
		}
	}
	target := "/platform/templates"
	if len(published) > 0 {
		target += "?published=" + url.QueryEscape(strings.Join(published, ","))
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// readImport collects the files of the form: uploaded files, pasted text,
// or (from the preview) files carried in hidden fields.
func (s *Server) readImport(r *http.Request) ([]templatefile.File, importView, error) {
	v := importView{Base: s.viewBase(r, "Import templates")}
	tooLarge := errStatus(http.StatusRequestEntityTooLarge, fmt.Sprintf("The upload is too large; at most %d KiB in all.", MaxBodyBytes>>10))
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		if err := r.ParseMultipartForm(MaxBodyBytes); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, v, tooLarge
			}
			return nil, v, errStatus(http.StatusBadRequest, "The upload could not be read.")
		}
	} else if err := r.ParseForm(); err != nil {
		return nil, v, tooLarge
	}
	v.Pasted = strings.ReplaceAll(r.PostFormValue("yaml"), "\r\n", "\n")
	v.Note = strings.TrimSpace(r.PostFormValue("note"))
	var files []templatefile.File
	if r.MultipartForm != nil {
		for _, fh := range r.MultipartForm.File["files"] {
			f, err := fh.Open()
			if err != nil {
				return nil, v, fmt.Errorf("open upload %s: %w", fh.Filename, err)
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return nil, v, fmt.Errorf("read upload %s: %w", fh.Filename, err)
			}
			files = append(files, templatefile.File{Name: path.Base(strings.ReplaceAll(fh.Filename, `\`, "/")), Data: b})
		}
	}
	names, datas := r.PostForm["file.name"], r.PostForm["file.data"]
	for i := range min(len(names), len(datas)) {
		files = append(files, templatefile.File{Name: names[i], Data: []byte(strings.ReplaceAll(datas[i], "\r\n", "\n"))})
	}
	if strings.TrimSpace(v.Pasted) != "" {
		files = append(files, templatefile.File{Name: "pasted.yaml", Data: []byte(v.Pasted)})
	}
	if len(files) == 0 {
		v.Problems = []templatefile.Problem{{File: "(form)", Message: "choose one or more YAML files, or paste YAML"}}
	}
	return files, v, nil
}

// applyProblems turns a store error about one template into a problem at
// that template's file, or returns nil for other errors.
func applyProblems(err error, parsed []templatefile.Parsed) []templatefile.Problem {
	var verr *store.ValidationError
	if err == nil || !errors.As(err, &verr) {
		return nil
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(err.Error(), "template "), ":")
	p := templatefile.Problem{File: "(upload)"}
	for _, t := range parsed {
		if t.Spec.Name == name {
			p.File, p.Line = t.File, t.Line
		}
	}
	var out []templatefile.Problem
	for _, f := range verr.Fields {
		q := p
		q.Field, q.Message = f.Field, f.Message
		out = append(out, q)
	}
	return out
}

// planHash fingerprints what an apply would do, so that the apply step can
// tell whether it still does what was previewed: the versions it starts
// from and publishes, and every value it would publish. The files come back
// from the browser, so names and changed fields alone would let an apply
// publish values nobody previewed.
func planHash(plan []store.PublishResult, specs []store.TemplateSpec, note string) (string, error) {
	h := sha256.New()
	for _, p := range plan {
		fmt.Fprintf(h, "%s %d %d %t %s\n", p.Name, p.Previous, p.Version, p.Changed, strings.Join(p.Fields, ","))
	}
	sorted := slices.Clone(specs)
	slices.SortFunc(sorted, func(a, b store.TemplateSpec) int { return strings.Compare(a.Name, b.Name) })
	for _, sp := range sorted {
		// encoding/json writes struct fields in order and map keys sorted:
		// equal specs give equal bytes, however their YAML was laid out.
		b, err := json.Marshal(sp)
		if err != nil {
			return "", fmt.Errorf("fingerprint template %s: %w", sp.Name, err)
		}
		fmt.Fprintf(h, "%d %s\n", len(b), b)
	}
	fmt.Fprintf(h, "note %q\n", note)
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

func (v *importView) describe(plan []store.PublishResult, parsed []templatefile.Parsed) error {
	for _, p := range plan {
		it := importItem{Name: p.Name, Version: p.Version, Was: p.Previous, Fields: p.Fields, Action: "unchanged"}
		var spec store.TemplateSpec
		for _, t := range parsed {
			if t.Spec.Name == p.Name {
				it.Where, spec = fmt.Sprintf("%s:%d", t.File, t.Line), t.Spec
			}
		}
		switch {
		case p.Created():
			it.Action = "create"
		case p.Changed:
			it.Action = "publish"
			lines, err := templatefile.DiffSpecs(p.Old, spec)
			if err != nil {
				return err
			}
			it.Diff = templatefile.Hunks(lines, 2)
		}
		if p.Changed {
			v.Changes++
		}
		v.Plan = append(v.Plan, it)
	}
	return nil
}
