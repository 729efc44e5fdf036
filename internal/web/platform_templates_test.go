package web_test

import (
	"bytes"
	"context"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/web"
)

// templateForm is a valid create form for a new template "tiny".
func templateForm() url.Values {
	return url.Values{
		"name": {"tiny"}, "displayName": {"Tiny"}, "description": {"A tiny VM"}, "osFamily": {"cirros"}, "tags": {"test, tiny"},
		"image.containerDisk": {"quay.io/kubevirt/cirros-container-disk-demo:v1.8.0"},
		"size.name":           {"nano", "custom", ""}, "size.instancetype": {"u1.nano", "", ""}, "size.preference": {"", "", ""},
		"size.cpu": {"", "2", ""}, "size.memoryMiB": {"", "2048", ""},
		"sshUser": {"cirros"}, "cloudInit": {"#cloud-config\r\npackages: [htop]\r\n"}, "maxLeaseDays": {"5"}, "autoApprove": {"true"},
		"teams": {"payments"}, "note": {"first cut"},
	}
}

func (e *env) post(c *http.Client, path string, v url.Values) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.PostForm(e.srv.URL+path, v)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body(e.t, resp)
}

func (e *env) get(c *http.Client, path string) (*http.Response, string) {
	e.t.Helper()
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body(e.t, resp)
}

func TestTemplateFormValidation(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	cases := []struct {
		name  string
		mod   func(url.Values)
		field string // the data-testid after "error-"
		msg   string
	}{
		{"bad name", func(v url.Values) { v.Set("name", "Bad_Name") }, "name", "DNS-1123"},
		{"taken name", func(v url.Values) { v.Set("name", "ubuntu-2404") }, "name", "already exists"},
		{"reserved name", func(v url.Values) { v.Set("name", "import") }, "name", "reserved"},
		{"no display name", func(v url.Values) { v.Set("displayName", " ") }, "displayName", "is required"},
		{"no OS", func(v url.Values) { v.Set("osFamily", "") }, "osFamily", "is required"},
		{"bad logo", func(v url.Values) { v.Set("logo", "../etc") }, "logo", "name of a logo"},
		{"two tags alike", func(v url.Values) { v.Set("tags", "a, a") }, "tags", "listed twice"},
		{"no image", func(v url.Values) { v.Set("image.containerDisk", "") }, "image", "exactly one"},
		{"two images", func(v url.Values) { v.Set("image.registry", "docker://quay.io/x/y:1") }, "image", "exactly one"},
		{"bad http", func(v url.Values) { v.Set("image.containerDisk", ""); v.Set("image.http", "ftp://x/y.img") }, "image-http", "http:// or https://"},
		{"half a data source", func(v url.Values) { v.Set("image.containerDisk", ""); v.Set("image.dataSource.name", "golden") },
			"image-dataSource-namespace", "namespace and a name"},
		{"disk missing", func(v url.Values) {
			v.Set("image.containerDisk", "")
			v.Set("image.registry", "docker://quay.io/x/y:1")
		},
			"rootDiskGiB", "is required"},
		{"disk not a number", func(v url.Values) { v.Set("rootDiskGiB", "big") }, "rootDiskGiB", "whole number"},
		{"no sizes", func(v url.Values) {
			v["size.name"] = []string{"", "", ""}
			v["size.instancetype"] = []string{"", "", ""}
			v["size.cpu"] = []string{"", "", ""}
			v["size.memoryMiB"] = []string{"", "", ""}
		},
			"sizes", "at least one"},
		{"cpu not a number", func(v url.Values) { v["size.cpu"] = []string{"", "two", ""} }, "sizes-1-cpu", "whole number"},
		{"too much memory", func(v url.Values) { v["size.memoryMiB"] = []string{"", "9999999", ""} }, "sizes-1-memoryMiB", "between 128"},
		{"size name twice", func(v url.Values) { v["size.name"] = []string{"nano", "nano", ""} }, "sizes-1-name", "used twice"},
		{"unknown instancetype", func(v url.Values) { v["size.instancetype"] = []string{"x9.big", "", ""} }, "sizes-0-instancetype", "not a known u1"},
		{"instancetype and cpu", func(v url.Values) { v["size.cpu"] = []string{"2", "2", ""} }, "sizes-0", "not both"},
		{"bad cloud-init", func(v url.Values) { v.Set("cloudInit", "packages: [htop]") }, "cloudInit", "#cloud-config"},
		{"cloud-init not YAML", func(v url.Values) { v.Set("cloudInit", "#cloud-config\npackages: [htop\n") }, "cloudInit", "not valid YAML"},
		{"no user", func(v url.Values) { v.Set("sshUser", "") }, "sshUser", "is required"},
		{"bad user", func(v url.Values) { v.Set("sshUser", "Root User") }, "sshUser", "Linux user name"},
		{"lease 0", func(v url.Values) { v.Set("maxLeaseDays", "0") }, "maxLeaseDays", "between 1 and 365"},
		{"lease words", func(v url.Values) { v.Set("maxLeaseDays", "a week") }, "maxLeaseDays", "whole number"},
		{"bad team", func(v url.Values) { v["teams"] = []string{"Not A Team"} }, "teams", "not a team name"},
		{"long note", func(v url.Values) { v.Set("note", strings.Repeat("n", 501)) }, "note", "at most 500"},
	}
	before := e.count(`SELECT count(*) FROM template_versions`)
	audits := e.count(`SELECT count(*) FROM audit_log WHERE action = 'template_change'`)
	for _, tc := range cases {
		v := templateForm()
		tc.mod(v)
		resp, b := e.post(c, "/platform/templates", v)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d", tc.name, resp.StatusCode)
			continue
		}
		m := regexp.MustCompile(`data-testid="error-` + regexp.QuoteMeta(tc.field) + `"[^>]*>([^<]*)<`).FindStringSubmatch(b)
		if m == nil || !strings.Contains(html.UnescapeString(m[1]), tc.msg) {
			t.Errorf("%s: no error %q at %s (got %v)", tc.name, tc.msg, tc.field, m)
		}
		// What was typed is kept.
		if !strings.Contains(b, `value="Tiny"`) && tc.field != "displayName" {
			t.Errorf("%s: the form lost the display name", tc.name)
		}
	}
	if n := e.count(`SELECT count(*) FROM template_versions`); n != before {
		t.Errorf("invalid forms stored %d versions", n-before)
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'template_change'`); n != audits {
		t.Errorf("invalid forms wrote %d audit entries", n-audits)
	}
}

func TestTemplateCreateEditAndClone(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	ctx := context.Background()
	resp, _ := e.post(c, "/platform/templates", templateForm())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/platform/templates/tiny?saved=created" {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tpl, err := e.st.TemplateByName(ctx, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	sp := tpl.Spec
	if tpl.Version != 1 || len(sp.Sizes) != 2 || sp.Sizes[1].CPU != 2 || sp.CloudInit != "#cloud-config\npackages: [htop]\n" ||
		strings.Join(sp.Tags, "|") != "test|tiny" || strings.Join(sp.Teams, "|") != "payments" || !sp.AutoApprove {
		t.Errorf("created spec: %+v", sp)
	}
	tv, _ := e.st.TemplateVersion(ctx, tpl.ID, 1)
	if tv.CreatedBy != "platform" || tv.Note != "first cut" {
		t.Errorf("version 1 by %q, note %q", tv.CreatedBy, tv.Note)
	}
	_, b := e.get(c, "/platform/templates/tiny?saved=created")
	if !strings.Contains(b, `data-testid="saved"`) || !strings.Contains(b, `data-testid="version-1"`) {
		t.Error("the template page does not confirm the creation")
	}

	// The edit form shows the current version and previews it.
	resp, b = e.get(c, "/platform/templates/tiny/edit")
	if resp.StatusCode != 200 || !strings.Contains(b, `name="base" value="1"`) || !strings.Contains(b, `value="custom"`) ||
		!strings.Contains(b, `data-testid="preview-yaml"`) || !strings.Contains(b, "kind: VirtualMachine") {
		t.Fatalf("edit form: %d", resp.StatusCode)
	}
	edit := templateForm()
	edit.Set("base", "1")
	edit.Set("maxLeaseDays", "9")
	edit.Set("name", "ignored-the-name-is-fixed")
	resp, _ = e.post(c, "/platform/templates/tiny", edit)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "saved=published") {
		t.Fatalf("edit: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tpl, _ = e.st.TemplateByName(ctx, "tiny")
	if tpl.Version != 2 || tpl.Spec.MaxLeaseDays != 9 {
		t.Errorf("after edit: v%d lease %d", tpl.Version, tpl.Spec.MaxLeaseDays)
	}
	// Saving again without changes publishes nothing.
	edit.Set("base", "2")
	resp, _ = e.post(c, "/platform/templates/tiny", edit)
	if !strings.HasSuffix(resp.Header.Get("Location"), "saved=unchanged") {
		t.Errorf("unchanged save: %s", resp.Header.Get("Location"))
	}
	// An edit of version 1, now stale, is refused and kept.
	edit.Set("base", "1")
	edit.Set("description", "my edit")
	resp, b = e.post(c, "/platform/templates/tiny", edit)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(b, `data-testid="conflict"`) || !strings.Contains(b, "my edit") ||
		!strings.Contains(b, `name="base" value="2"`) || !strings.Contains(b, "/platform/templates/tiny/diff?from=1&amp;to=2") {
		t.Errorf("stale edit: %d", resp.StatusCode)
	}
	if tpl, _ = e.st.TemplateByName(ctx, "tiny"); tpl.Version != 2 {
		t.Errorf("a stale edit published v%d", tpl.Version)
	}
	// An invalid edit shows the problems.
	edit.Set("base", "2")
	edit.Set("maxLeaseDays", "400")
	if resp, b = e.post(c, "/platform/templates/tiny", edit); resp.StatusCode != 422 || !strings.Contains(b, `data-testid="error-maxLeaseDays"`) {
		t.Errorf("invalid edit: %d", resp.StatusCode)
	}

	// Clone: the form is filled from the original under a new name.
	resp, b = e.get(c, "/platform/templates/tiny/clone")
	if resp.StatusCode != 200 || !strings.Contains(b, `value="tiny-copy"`) || !strings.Contains(b, `value="Tiny (copy)"`) ||
		!strings.Contains(b, `name="mode" value="clone"`) {
		t.Fatalf("clone form: %d", resp.StatusCode)
	}
	clone := templateForm()
	clone.Set("mode", "clone")
	clone.Set("name", "tiny-copy")
	if resp, _ = e.post(c, "/platform/templates", clone); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("clone: %d", resp.StatusCode)
	}
	if _, err := e.st.TemplateByName(ctx, "tiny-copy"); err != nil {
		t.Errorf("clone not created: %v", err)
	}
	for _, p := range []string{"/platform/templates/nope", "/platform/templates/nope/edit", "/platform/templates/nope/clone"} {
		if resp, _ := e.get(c, p); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// Every change is in the audit log, as the platform engineer.
	if n := e.count(`SELECT count(*) FROM audit_log WHERE action = 'template_change' AND actor = 'platform'`); n != 3 {
		t.Errorf("%d template audit entries, want 3 (create, edit, clone)", n)
	}
}

func TestTemplatePreview(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	v := templateForm()
	v.Set("previewSize", "custom")
	resp, b := e.post(c, "/platform/templates/preview", v)
	if resp.StatusCode != 200 || strings.Contains(b, "<html") {
		t.Fatalf("preview: %d", resp.StatusCode)
	}
	b = html.UnescapeString(b)
	for _, want := range []string{"kind: VirtualMachine", "cores: 2", "guest: 2Gi", "containerDisk:", "packages:", "- htop",
		"paddock.dev/template: tiny", `paddock.dev/template-version: "1"`, "namespace: payments", `<option value="custom" selected>`} {
		if !strings.Contains(b, want) {
			t.Errorf("preview lacks %q:\n%s", want, b)
		}
	}
	v.Set("previewSize", "nano")
	v.Set("base", "4")
	_, b = e.post(c, "/platform/templates/preview", v)
	if !strings.Contains(b, "name: u1.nano") || strings.Contains(b, "cores:") || !strings.Contains(b, `template-version: &#34;5&#34;`) {
		t.Errorf("preview of the instancetype size:\n%s", b)
	}
	// An invalid form previews its problems, still with 200 for htmx.
	v.Set("cloudInit", "nope")
	resp, b = e.post(c, "/platform/templates/preview", v)
	if resp.StatusCode != 200 || !strings.Contains(b, `data-testid="preview-problems"`) || !strings.Contains(b, "cloudInit: must start") {
		t.Errorf("invalid preview: %d\n%s", resp.StatusCode, b)
	}
	// The form asks htmx for the preview as it changes.
	_, b = e.get(c, "/platform/templates/new")
	if !strings.Contains(b, `hx-post="/platform/templates/preview"`) || !strings.Contains(b, `hx-trigger="input changed delay:400ms"`) {
		t.Error("the form does not update the preview")
	}
}

func TestTemplateHistoryDiffAndRollback(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	ctx := context.Background()
	tpl, _ := e.st.TemplateByName(ctx, "fedora")
	v1 := tpl.Spec
	v2 := v1
	v2.MaxLeaseDays = 21
	v2.Sizes = append([]store.Size{}, v1.Sizes...)
	v2.Sizes[0].MemoryMiB = 3072
	if _, err := e.st.PublishTemplateChange(ctx, store.Publish{Spec: v2, Actor: store.UserActor(e.users["platform"]), Note: "roomier"}); err != nil {
		t.Fatal(err)
	}
	resp, b := e.get(c, "/platform/templates/fedora")
	if resp.StatusCode != 200 || !strings.Contains(b, `data-testid="version-2"`) || !strings.Contains(b, "roomier") ||
		!strings.Contains(b, "/platform/templates/fedora/diff?from=1&amp;to=2") {
		t.Fatalf("template page: %d", resp.StatusCode)
	}
	resp, b = e.get(c, "/platform/templates/fedora/diff?from=1&to=2")
	if resp.StatusCode != 200 {
		t.Fatalf("diff: %d", resp.StatusCode)
	}
	for _, want := range []string{`class="diff-del"`, `class="diff-add"`, "-    memoryMiB: 2048", "+    memoryMiB: 3072",
		"-maxLeaseDays: 14", "+maxLeaseDays: 21", "Changed: sizes, maxLeaseDays"} {
		if !strings.Contains(html.UnescapeString(b), want) {
			t.Errorf("diff lacks %q", want)
		}
	}
	if _, b = e.get(c, "/platform/templates/fedora/diff"); !strings.Contains(b, "version 1 → 2") {
		t.Error("the default diff is not previous → current")
	}
	if _, b = e.get(c, "/platform/templates/fedora/diff?from=2&to=2"); !strings.Contains(b, `data-testid="no-changes"`) {
		t.Error("a version compared with itself shows changes")
	}
	for _, p := range []string{"/platform/templates/fedora/diff?from=1&to=9", "/platform/templates/fedora/diff?from=x&to=1",
		"/platform/templates/fedora/versions/9", "/platform/templates/fedora/versions/zero"} {
		if resp, _ := e.get(c, p); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// A version's YAML, and its download, read back as the same spec.
	resp, b = e.get(c, "/platform/templates/fedora/versions/1")
	if resp.StatusCode != 200 || !strings.Contains(b, `data-testid="version-yaml"`) || !strings.Contains(b, "maxLeaseDays: 14") {
		t.Errorf("version page: %d", resp.StatusCode)
	}
	resp, b = e.get(c, "/platform/templates/fedora/versions/1?download=1")
	back, err := templatefile.ParseYAML("fedora.yaml", []byte(b))
	if err != nil || !store.SameSpec(back, v1) || !strings.Contains(resp.Header.Get("Content-Disposition"), "fedora.yaml") {
		t.Errorf("download: %v", err)
	}
	// Publishing version 1 again makes it version 3.
	resp, _ = e.post(c, "/platform/templates/fedora/versions/1/republish", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("republish: %d", resp.StatusCode)
	}
	tpl, _ = e.st.TemplateByName(ctx, "fedora")
	if tpl.Version != 3 || !store.SameSpec(tpl.Spec, v1) {
		t.Errorf("after republish: v%d", tpl.Version)
	}
}

func TestDeprecateRetireRestorePages(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	pc, dc := e.browser("platform"), e.browser("developer")
	ctx := context.Background()
	r, err := e.st.SubmitRequest(ctx, store.NewRequest{TeamID: e.teams["payments"].ID, Requester: e.users["developer"],
		Template: "fedora", Size: "small", Name: "keeper", SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	resp, b := e.post(pc, "/platform/templates/fedora/deprecate", url.Values{"note": {""}})
	if resp.StatusCode != 422 || !strings.Contains(b, `data-testid="error-note"`) {
		t.Errorf("deprecate without a note: %d", resp.StatusCode)
	}
	resp, _ = e.post(pc, "/platform/templates/fedora/deprecate", url.Values{"note": {"Use debian-12 instead"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deprecate: %d", resp.StatusCode)
	}
	// Hidden from the catalog and the form; the detail page explains.
	if _, b = e.get(dc, "/catalog"); strings.Contains(b, `data-testid="template-fedora"`) {
		t.Error("the catalog offers a deprecated template")
	}
	resp, b = e.get(dc, "/catalog/fedora")
	if resp.StatusCode != 200 || !strings.Contains(b, `data-testid="deprecated"`) || strings.Contains(b, `data-testid="request-template"`) {
		t.Errorf("catalog page of a deprecated template: %d", resp.StatusCode)
	}
	// The existing VM's page shows the note.
	_, b = e.get(dc, "/requests/"+strconv.FormatInt(r.ID, 10))
	if !strings.Contains(b, `data-testid="template-deprecated"`) || !strings.Contains(b, "Use debian-12 instead") {
		t.Error("the request page does not show the deprecation")
	}
	if resp, _ = e.post(pc, "/platform/templates/fedora/retire", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retire: %d", resp.StatusCode)
	}
	if _, b = e.get(pc, "/platform/templates"); strings.Contains(b, `data-testid="row-fedora"`) || !strings.Contains(b, "Show 1 retired") {
		t.Error("the list shows a retired template, or hides that it does not")
	}
	if _, b = e.get(pc, "/platform/templates?retired=1"); !strings.Contains(b, `data-testid="row-fedora"`) {
		t.Error("the list does not show retired templates on request")
	}
	if resp, _ = e.get(dc, "/catalog/fedora"); resp.StatusCode != 404 {
		t.Errorf("catalog page of a retired template: %d", resp.StatusCode)
	}
	if resp, _ = e.get(pc, "/platform/templates/fedora/edit"); resp.StatusCode != http.StatusConflict {
		t.Errorf("edit a retired template: %d", resp.StatusCode)
	}
	// The VM still shows its template.
	if resp, _ = e.get(dc, "/requests/"+strconv.FormatInt(r.ID, 10)); resp.StatusCode != 200 {
		t.Errorf("request page after retirement: %d", resp.StatusCode)
	}
	if resp, _ = e.post(pc, "/platform/templates/fedora/retire", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("retire twice: %d", resp.StatusCode)
	}
	if resp, _ = e.post(pc, "/platform/templates/fedora/restore", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("restore: %d", resp.StatusCode)
	}
	if _, b = e.get(dc, "/catalog"); !strings.Contains(b, `data-testid="template-fedora"`) {
		t.Error("a restored template is not in the catalog")
	}
	if n := e.count(`SELECT count(*) FROM audit_log WHERE target = 'template:fedora' AND actor = 'platform'`); n != 3 {
		t.Errorf("%d audit entries, want 3", n)
	}
}

func TestOutdatedVMsAreBadged(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	r, err := e.st.SubmitRequest(ctx, store.NewRequest{TeamID: e.teams["payments"].ID, Requester: e.users["developer"],
		Template: "cirros", Size: "nano", Name: "old-one", SSHPublicKey: sshKey, LeaseDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	c := e.browser("developer")
	if _, b := e.get(c, "/requests"); strings.Contains(b, "template-outdated") {
		t.Error("a current VM is badged")
	}
	tpl, _ := e.st.TemplateByName(ctx, "cirros")
	for _, d := range []string{"v2", "v3"} {
		tpl.Spec.Description = d
		if _, _, err := e.st.PublishTemplate(ctx, tpl.Spec, nil); err != nil {
			t.Fatal(err)
		}
	}
	const badge = "template v1 is outdated — v3 is current"
	for _, p := range []string{"/requests", "/requests/" + strconv.FormatInt(r.ID, 10)} {
		if _, b := e.get(c, p); !strings.Contains(b, badge) {
			t.Errorf("%s lacks the badge %q", p, badge)
		}
	}
	// The platform team sees the count.
	_, b := e.get(e.browser("platform"), "/platform/templates")
	if !strings.Contains(b, "1 on older versions") {
		t.Error("the template list does not count outdated VMs")
	}
	_, b = e.get(e.browser("platform"), "/platform/templates/cirros")
	if m := regexp.MustCompile(`data-testid="version-vms-1">(\d+)<`).FindStringSubmatch(b); m == nil || m[1] != "1" {
		t.Errorf("usage of v1: %v", m)
	}
}

// multipartBody builds an upload of files plus form fields.
func multipartBody(t *testing.T, files map[string]string, fields url.Values) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, data := range files {
		fw, err := mw.CreateFormFile("files", name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(data))
	}
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func TestTemplateImport(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	ctx := context.Background()
	cirros, _ := e.st.TemplateByName(ctx, "cirros")
	changed := cirros.Spec
	changed.MaxLeaseDays = 3
	changedYAML, _ := templatefile.Marshal(changed)
	fresh := strings.Replace(string(changedYAML), "name: cirros", "name: cirros-two", 1)
	upload := func(files map[string]string, fields url.Values) (*http.Response, string) {
		ct, buf := multipartBody(t, files, fields)
		resp, err := c.Post(e.srv.URL+"/platform/templates/import", ct, buf)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body(t, resp)
	}
	versions := e.count(`SELECT count(*) FROM template_versions`)

	// A mistake anywhere: nothing applies, and the problem is located.
	bad := strings.Replace(fresh, "maxLeaseDays: 3", "maxLeaseDays: 3\ncolour: red", 1)
	resp, b := upload(map[string]string{"cirros.yaml": string(changedYAML), "two.yaml": bad}, nil)
	if resp.StatusCode != 422 || !strings.Contains(b, "two.yaml:") || !strings.Contains(b, "colour: unknown field") {
		t.Errorf("bad upload: %d\n%s", resp.StatusCode, b)
	}
	if resp, b = upload(nil, nil); resp.StatusCode != 422 || !strings.Contains(b, "choose one or more YAML files") {
		t.Errorf("empty upload: %d", resp.StatusCode)
	}

	// The preview says what would happen and changes nothing.
	resp, b = upload(map[string]string{"cirros.yaml": string(changedYAML)}, url.Values{"yaml": {fresh}, "note": {"from git"}})
	if resp.StatusCode != 200 || !strings.Contains(b, `data-testid="plan-cirros"`) || !strings.Contains(b, "publish version 2 (now 1)") ||
		!strings.Contains(b, "create version 1") || !strings.Contains(b, `data-testid="apply"`) || !strings.Contains(b, "-maxLeaseDays: 7") {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, b)
	}
	if n := e.count(`SELECT count(*) FROM template_versions`); n != versions {
		t.Fatal("the preview published")
	}
	plan := regexp.MustCompile(`name="plan" value="([0-9a-f]+)"`).FindStringSubmatch(b)
	if plan == nil {
		t.Fatal("no plan in the preview")
	}
	apply := url.Values{"mode": {"apply"}, "plan": {plan[1]}, "note": {"from git"},
		"file.name": {"cirros.yaml", "pasted.yaml"}, "file.data": {string(changedYAML), fresh}}

	// Someone publishes in between: the apply refuses and shows the new plan.
	other := cirros.Spec
	other.Description = "meanwhile"
	if _, _, err := e.st.PublishTemplate(ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	resp, b = e.post(c, "/platform/templates/import", apply)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(b, `data-testid="stale"`) || !strings.Contains(b, "publish version 3 (now 2)") {
		t.Fatalf("stale apply: %d", resp.StatusCode)
	}
	versions++
	if n := e.count(`SELECT count(*) FROM template_versions`); n != versions {
		t.Fatal("a stale apply published")
	}
	apply.Set("plan", regexp.MustCompile(`name="plan" value="([0-9a-f]+)"`).FindStringSubmatch(b)[1])
	resp, _ = e.post(c, "/platform/templates/import", apply)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/platform/templates?published="+url.QueryEscape("cirros:3,cirros-two:1") {
		t.Fatalf("apply: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := e.count(`SELECT count(*) FROM template_versions`); n != versions+2 {
		t.Errorf("apply published %d versions, want 2", n-versions)
	}
	if n := e.count(`SELECT count(*) FROM template_versions WHERE note = 'from git'`); n != 2 {
		t.Errorf("%d versions carry the note", n)
	}
	_, b = e.get(c, resp.Header.Get("Location"))
	if !strings.Contains(b, "Published cirros version 3, cirros-two version 1.") {
		t.Error("the list does not say what was published")
	}
	// Uploading the same again: nothing to apply.
	resp, b = upload(map[string]string{"cirros.yaml": string(changedYAML)}, nil)
	if resp.StatusCode != 200 || !strings.Contains(b, "Nothing to apply") || strings.Contains(b, `data-testid="apply"`) {
		t.Errorf("re-upload: %d", resp.StatusCode)
	}
	// A retired template cannot be imported; the problem names its file.
	if err := e.st.DeprecateTemplate(ctx, "cirros-two", "x", store.Actor{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RetireTemplate(ctx, "cirros-two", store.Actor{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	resp, b = upload(map[string]string{"two.yaml": strings.Replace(fresh, "maxLeaseDays: 3", "maxLeaseDays: 4", 1)}, nil)
	if resp.StatusCode != 422 || !strings.Contains(b, "two.yaml:1: name: template &#34;cirros-two&#34; is retired") {
		t.Errorf("retired upload: %d\n%s", resp.StatusCode, b)
	}
}

// TestTemplateImportAppliesOnlyWhatWasPreviewed: the files come back from
// the browser at apply time; an apply whose files differ from the previewed
// ones in any value (here the image) is refused, however the plan's names
// and changed fields compare, while the same values, laid out differently,
// apply.
func TestTemplateImportAppliesOnlyWhatWasPreviewed(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	ctx := context.Background()
	cirros, _ := e.st.TemplateByName(ctx, "cirros")
	withImage := func(image string) string {
		spec := cirros.Spec
		spec.Image = store.ImageSource{ContainerDisk: image}
		y, err := templatefile.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		return string(y)
	}
	imageA, imageB := withImage("registry.example/cirros:a"), withImage("registry.example/cirros:b")
	resp, b := e.post(c, "/platform/templates/import", url.Values{"yaml": {imageA}, "note": {"bump"}})
	plan := regexp.MustCompile(`name="plan" value="([0-9a-f]+)"`).FindStringSubmatch(b)
	if resp.StatusCode != 200 || plan == nil || !strings.Contains(b, "publish version 2 (now 1)") {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, b)
	}
	apply := func(data string) (*http.Response, string) {
		return e.post(c, "/platform/templates/import", url.Values{"mode": {"apply"}, "plan": {plan[1]}, "note": {"bump"},
			"file.name": {"pasted.yaml"}, "file.data": {data}})
	}
	versions := e.count(`SELECT count(*) FROM template_versions`)
	resp, b = apply(imageB)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(b, `data-testid="stale"`) ||
		!strings.Contains(b, "not the ones you previewed") || !strings.Contains(b, "registry.example/cirros:b") {
		t.Errorf("apply of another image with the preview's plan: %d\n%s", resp.StatusCode, b)
	}
	if n := e.count(`SELECT count(*) FROM template_versions`); n != versions {
		t.Fatal("an apply of what was not previewed published")
	}
	// The same values, in another layout (a comment, keys reordered by a
	// round trip through the parser), are what was previewed.
	resp, _ = apply("# reformatted\n" + strings.Replace(imageA, "name: cirros\n", "", 1) + "name: cirros\n")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("apply of the previewed content: %d", resp.StatusCode)
	}
	got, _ := e.st.TemplateByName(ctx, "cirros")
	if got.Version != 2 || got.Spec.Image.ContainerDisk != "registry.example/cirros:a" {
		t.Errorf("published v%d with image %q", got.Version, got.Spec.Image.ContainerDisk)
	}
}

// TestOnlyThePlatformTeamChangesTemplates calls every route that changes a
// template as every other role: each is refused, and nothing changes.
func TestOnlyThePlatformTeamChangesTemplates(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	if err := e.st.DeprecateTemplate(ctx, "broken-demo", "demo", store.Actor{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	edit := templateForm()
	edit.Set("name", "cirros")
	routes := []struct {
		path string
		form url.Values
	}{
		{"/platform/templates", templateForm()},
		{"/platform/templates/cirros", edit},
		{"/platform/templates/cirros/deprecate", url.Values{"note": {"x"}}},
		{"/platform/templates/broken-demo/retire", nil},
		{"/platform/templates/broken-demo/restore", nil},
		{"/platform/templates/cirros/versions/1/republish", nil},
		{"/platform/templates/import", url.Values{"yaml": {"name: x"}}},
		{"/platform/templates/preview", templateForm()},
	}
	state := `SELECT (SELECT count(*) FROM template_versions) + (SELECT count(*) FROM templates WHERE deprecated_at IS NOT NULL)
		+ (SELECT count(*) FROM templates WHERE retired_at IS NOT NULL) + (SELECT count(*) FROM audit_log WHERE action = 'template_change')`
	before := e.count(state)
	for _, login := range []string{"developer", "outsider", "manager"} {
		c := e.browser(login)
		for _, rt := range routes {
			if resp, _ := e.post(c, rt.path, rt.form); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s POST %s: %d, want 403", login, rt.path, resp.StatusCode)
			}
		}
		for _, p := range []string{"/platform/templates", "/platform/templates/new", "/platform/templates/cirros/edit"} {
			if resp, _ := e.get(c, p); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s GET %s: %d, want 403", login, p, resp.StatusCode)
			}
		}
		if _, b := e.get(c, "/catalog"); strings.Contains(b, `data-testid="nav-templates"`) {
			t.Errorf("%s sees the Templates link", login)
		}
	}
	if after := e.count(state); after != before {
		t.Error("a refused request changed templates")
	}
	// Anonymous visitors are sent to sign in.
	if resp, _ := e.post(e.browser(""), "/platform/templates/cirros/deprecate", url.Values{"note": {"x"}}); resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
		t.Errorf("anonymous: %d", resp.StatusCode)
	}
	if _, b := e.get(e.browser("platform"), "/catalog"); !strings.Contains(b, `data-testid="nav-templates"`) {
		t.Error("the platform team has no Templates link")
	}
}

func TestCatalogDetailPage(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	resp, b := e.get(c, "/catalog/fedora")
	if resp.StatusCode != 200 {
		t.Fatalf("detail: %d", resp.StatusCode)
	}
	b = html.UnescapeString(b)
	for _, want := range []string{"Fedora 41", "Imported from a container registry", "docker://quay.io/containerdisks/fedora:41",
		"Persistent, 30 GiB", "<td>medium</td><td>2</td><td>4 GiB</td>", "qemu-guest-agent", "14 days",
		"Approved automatically for a lease of up to 14 days", "Every team", `href="/requests/new?template=fedora"`} {
		if !strings.Contains(b, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	_, b = e.get(c, "/catalog/centos-stream9")
	if !strings.Contains(b, "Cloned from a golden image") || !strings.Contains(b, "Every request waits for approval") ||
		!strings.Contains(b, "u1.xlarge") {
		t.Error("golden-image template detail")
	}
	_, b = e.get(c, "/catalog/ubuntu-2404")
	if !strings.Contains(b, "Ephemeral") {
		t.Error("a container-disk template does not say its disk is ephemeral")
	}
	// The catalog links to it.
	if _, b = e.get(c, "/catalog"); !strings.Contains(b, `href="/catalog/fedora"`) {
		t.Error("the catalog does not link to the detail page")
	}
	// A template for another team is not found for this developer.
	tpl, _ := e.st.TemplateByName(context.Background(), "cirros")
	tpl.Spec.Teams = []string{"billing"}
	if _, _, err := e.st.PublishTemplate(context.Background(), tpl.Spec, nil); err != nil {
		t.Fatal(err)
	}
	if resp, _ = e.get(c, "/catalog/cirros"); resp.StatusCode != 404 {
		t.Errorf("another team's template: %d", resp.StatusCode)
	}
	if resp, _ = e.get(e.browser("outsider"), "/catalog/cirros"); resp.StatusCode != 200 {
		t.Errorf("own team's template: %d", resp.StatusCode)
	}
	if resp, _ = e.get(c, "/catalog/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown template: %d", resp.StatusCode)
	}
	// Managers may look, but not request.
	resp, b = e.get(e.browser("manager"), "/catalog/fedora")
	if resp.StatusCode != 200 || strings.Contains(b, `data-testid="request-template"`) {
		t.Errorf("manager: %d", resp.StatusCode)
	}
}
