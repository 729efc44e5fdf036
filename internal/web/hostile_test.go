package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/internal/web"
	"paddock/templates"
)

// Hostile input (issue 10): oversized and malformed bodies get a clear 4xx
// and store nothing. The JSON API's cases are in TestAPI; oversized headers
// and slow clients are the http.Server's, tested against the real binary in
// cmd/portal.

func TestOversizedFormIsAClear413Page(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	v := validForm()
	v.Set("justification", strings.Repeat("a", web.MaxBodyBytes+1))
	resp, err := e.browser("developer").PostForm(e.url+"/requests", v)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d, want 413", resp.StatusCode)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(b, "too large") {
		t.Errorf("oversized form: the page does not say the form was too large:\n%.2000s", b)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Error("an oversized form was stored")
	}
}

// hostileUpload builds an upload of the template import form.
func hostileUpload(t *testing.T, files map[string][]byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("mode", "preview")
	for name, data := range files {
		fw, err := mw.CreateFormFile("files", name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &buf
}

func TestTemplateImportRefusesHostileUploads(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	before := e.count(`SELECT count(*) FROM template_versions`)
	okType, okBody := hostileUpload(t, map[string][]byte{"a.yaml": []byte("name: x\n")})
	bigType, bigBody := hostileUpload(t, map[string][]byte{"big.yaml": bytes.Repeat([]byte("# padding\n"), web.MaxBodyBytes/10+1)})
	manyType, manyBody := hostileUpload(t, func() map[string][]byte {
		m := map[string][]byte{}
		for i := range 3 {
			m[fmt.Sprintf("part-%d.yaml", i)] = bytes.Repeat([]byte("x"), web.MaxBodyBytes/2)
		}
		return m
	}())
	truncated := okBody.Bytes()[:okBody.Len()-20]
	cases := []struct {
		name, contentType string
		body              []byte
		status            int
		says              string
	}{
		{"one file over 1 MiB", bigType, bigBody.Bytes(), http.StatusRequestEntityTooLarge, "too large"},
		{"many parts over 1 MiB in all", manyType, manyBody.Bytes(), http.StatusRequestEntityTooLarge, "too large"},
		{"truncated", okType, truncated, http.StatusBadRequest, "could not be read"},
		{"no boundary", "multipart/form-data", okBody.Bytes(), http.StatusBadRequest, "could not be read"},
		{"wrong boundary", "multipart/form-data; boundary=nope", okBody.Bytes(), http.StatusBadRequest, "could not be read"},
		{"garbage", okType, []byte("\x00\xff--\r\n\r\n--garbage"), http.StatusBadRequest, "could not be read"},
		{"headers without end", okType, []byte("--" + strings.TrimPrefix(okType, "multipart/form-data; boundary=") + "\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.yaml\"\r\n" + strings.Repeat("X-Pad: y\r\n", 20000)), 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url+"/platform/templates/import", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := body(t, resp)
			if tc.status == 0 {
				// Any clear refusal will do, but never a 5xx or a success.
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("status %d:\n%.1000s", resp.StatusCode, b)
				}
				return
			}
			if resp.StatusCode != tc.status || !strings.Contains(b, tc.says) {
				t.Errorf("status %d, want %d with %q:\n%.1000s", resp.StatusCode, tc.status, tc.says, b)
			}
		})
	}
	if after := e.count(`SELECT count(*) FROM template_versions`); after != before {
		t.Errorf("hostile uploads published %d template versions", after-before)
	}
}

// fuzzEnv is a web server on a private database for fuzz targets, which
// cannot use setup (it takes a *testing.T): team payments, its developer,
// the example templates, and no rate limit to speak of.
type fuzzEnv struct {
	url   string
	token string
	dev   *http.Client
	st    *store.Store
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx := context.Background()
	pool := testdb.New(f)
	st := store.New(pool)
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	st.SetJobClient(jobs)
	team, err := st.EnsureTeam(ctx, "payments", "payments")
	if err != nil {
		f.Fatal(err)
	}
	dev, err := st.EnsureUser(ctx, "developer", "developer", store.RoleDeveloper, &team.ID)
	if err != nil {
		f.Fatal(err)
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			f.Fatal(err)
		}
	}
	tok, err := st.CreateToken(ctx, dev.ID, "fuzz", nil)
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.Config{DevSignIn: true, APIRate: 1 << 30, SignInRate: 1 << 30}, st, nil, nil,
		slog.New(slog.DiscardHandler)).Handler())
	f.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(srv.URL+"/dev/signin", url.Values{"login": {"developer"}})
	if err != nil {
		f.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		f.Fatalf("sign in: %d", resp.StatusCode)
	}
	return &fuzzEnv{url: srv.URL, token: tok, dev: c, st: st}
}

// FuzzAPICreateRequest posts arbitrary bodies to POST /api/v1/requests: the
// answer is a 201 with a request, or a 4xx with a JSON error (and the fields
// at fault for a 422), as openapi.json describes; never a 5xx, never a bare text error.
func FuzzAPICreateRequest(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"template":`, `{} {}`, `{"colour":"red"}`, `{"leaseDays":"seven"}`,
		`{"leaseDays":1e400}`, `{"leaseDays":-9223372036854775809}`, `{"name":"\ud800"}`, `{"name":"a\u0000b"}`,
		`{"template":"cirros","size":"nano","name":"fz-1","sshPublicKey":"` + sshKey + `","leaseDays":1}`,
		`{"template":"cirros","size":"nano","name":"fz-1","sshPublicKey":"` + sshKey + `","leaseDays":1,"template":"x"}`,
		`{"template":"cirros","size":"nano","name":"` + strings.Repeat("a", 300) + `","sshPublicKey":"ssh-rsa AAAA","leaseDays":0}`,
		`{"template":"cirros","size":"nano","name":"fz-2","sshPublicKey":"` + sshKey + `","leaseDays":1,"justification":"a\u0000b"}`,
		strings.Repeat("[", 10000),
	} {
		f.Add(s)
	}
	e := newFuzzEnv(f)
	c, err := apiContract()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		req, _ := http.NewRequest("POST", e.url+"/api/v1/requests", strings.NewReader(payload))
		req.Header.Set("Authorization", "Bearer "+e.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := c.check(req, []byte(payload), resp.StatusCode, resp.Header, b); err != nil {
			t.Fatalf("openapi contract, for %q: %v", payload, err)
		}
		var out struct {
			ID     int64  `json:"id"`
			Error  string `json:"error"`
			Fields []struct{ Field, Message string }
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("status %d, not JSON: %q", resp.StatusCode, b)
		}
		switch {
		case resp.StatusCode == http.StatusCreated:
			if out.ID == 0 {
				t.Fatalf("201 without an id: %s", b)
			}
		case resp.StatusCode >= 500:
			t.Fatalf("status %d for %q: %s", resp.StatusCode, payload, b)
		case resp.StatusCode == http.StatusUnprocessableEntity:
			if len(out.Fields) == 0 || out.Fields[0].Message == "" {
				t.Fatalf("422 without fields: %s", b)
			}
		case resp.StatusCode >= 400:
			if out.Error == "" {
				t.Fatalf("status %d without a message: %s", resp.StatusCode, b)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

// FuzzHistoryQuery sends arbitrary query strings to the history page and
// its CSV export (issue 7's filter parser, through to SQL): a bad value is a
// 422 naming its field, never a 5xx.
func FuzzHistoryQuery(f *testing.F) {
	for _, s := range []string{
		``, `state=running`, `state=nope`, `team=payments`, `template=cirros&state=failed`, `requester=developer`,
		`requester=nobody`, `from=2026-01-01&to=2025-01-01`, `from=2026-02-30`, `to=yesterday`, `q=%25_%5C`,
		`q=` + strings.Repeat("x", 300), `after=1.1`, `after=-1.-1`, `after=9223372036854775807.9223372036854775807`,
		`after=.`, `q=%00`, `q=%ff%fe`, `state=running&state=failed`, `%zz=1`, `;=;`,
	} {
		f.Add(s)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, query string) {
		for _, path := range []string{"/history", "/history.csv"} {
			resp, err := e.dev.Get(e.url + path + "?" + query)
			if err != nil {
				// The client refuses some URLs before sending them.
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Fatalf("%s?%s: status %d:\n%.500s", path, query, resp.StatusCode, b)
			}
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s?%s: status %d", path, query, resp.StatusCode)
			}
		}
	})
}
