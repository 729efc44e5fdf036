package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/web"
)

func TestPreflightChecksTheFormWithoutStoringAnything(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	cluster, _, err := provision.NewSimulatedCluster(context.Background(), e.st, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.Config{DevSignIn: true}, e.st, cluster, nil, slog.New(slog.DiscardHandler)).Handler())
	defer srv.Close()
	e.srv = srv
	c := e.browser("developer")
	for _, tc := range []struct {
		mod  func(url.Values)
		want string
	}{
		{func(url.Values) {}, "The VM is valid"},
		{func(v url.Values) { v.Set("name", "Bad_Name") }, "Fix the VM name first"},
		{func(v url.Values) { v.Set("sshPublicKey", "nope") }, "Fix the SSH public key first"},
		{func(v url.Values) { v.Set("template", "") }, "Choose a template first"},
		{func(v url.Values) { v.Set("size", "huge") }, "Choose a size first"},
	} {
		v := validForm()
		tc.mod(v)
		resp, err := c.PostForm(srv.URL+"/requests/preflight", v)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, `data-testid="preflight"`) || !strings.Contains(b, tc.want) {
			t.Errorf("preflight %v: %d %s", v, resp.StatusCode, b)
		}
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("preflight stored %d requests", n)
	}
}

// TestTemplatesOfOtherTeamsLookMissing: a template offered only to another
// team, a retired one and one that does not exist get the same answer, from
// the pre-flight check and from submitting (form and API), so a developer
// cannot learn which templates other teams have.
func TestTemplatesOfOtherTeamsLookMissing(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	cirros, err := e.st.TemplateByName(ctx, "cirros")
	if err != nil {
		t.Fatal(err)
	}
	private := cirros.Spec
	private.Name, private.Teams = "billing-only", []string{"billing"}
	retired := cirros.Spec
	retired.Name = "gone"
	for _, spec := range []store.TemplateSpec{private, retired} {
		if _, _, err := e.st.PublishTemplate(ctx, spec, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.DeprecateTemplate(ctx, "gone", "old", store.Actor{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RetireTemplate(ctx, "gone", store.Actor{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	cluster, _, err := provision.NewSimulatedCluster(ctx, e.st, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.Config{DevSignIn: true}, e.st, cluster, nil, slog.New(slog.DiscardHandler)).Handler())
	defer srv.Close()
	e.srv = srv
	c := e.browser("developer")
	tok := e.token("developer")
	answers := map[string][3]string{}
	for _, name := range []string{"billing-only", "gone", "no-such-template"} {
		v := validForm()
		v.Set("template", name)
		v.Set("size", cirros.Spec.Sizes[0].Name)
		resp, err := c.PostForm(srv.URL+"/requests/preflight", v)
		if err != nil {
			t.Fatal(err)
		}
		pre := body(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(pre, "Choose another template") {
			t.Errorf("preflight %s: %d %s", name, resp.StatusCode, pre)
		}
		resp, err = c.PostForm(srv.URL+"/requests", v)
		if err != nil {
			t.Fatal(err)
		}
		form := body(t, resp)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("submit form %s: %d", name, resp.StatusCode)
		}
		_, field, _ := strings.Cut(form, "does not exist")
		field, _, _ = strings.Cut(field, "<")
		payload := fmt.Sprintf(`{"template":%q,"size":%q,"name":"web-1","sshPublicKey":%q,"leaseDays":3}`, name, cirros.Spec.Sizes[0].Name, sshKey)
		resp, api := e.apiDo(tok, "POST", "/api/v1/requests", payload, nil)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(api, "does not exist, is not offered to your team, or is retired") {
			t.Errorf("API submit %s: %d %s", name, resp.StatusCode, api)
		}
		answers[name] = [3]string{pre, "does not exist" + field, api}
	}
	if a, b, c := answers["billing-only"], answers["gone"], answers["no-such-template"]; a != b || b != c {
		t.Errorf("answers differ:\nnot offered: %q\nretired:     %q\nmissing:     %q", a, b, c)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Errorf("%d requests stored", n)
	}
	// The team it is offered to may still use it.
	v := validForm()
	v.Set("template", "billing-only")
	v.Set("size", cirros.Spec.Sizes[0].Name)
	resp, err := e.browser("outsider").PostForm(srv.URL+"/requests/preflight", v)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); !strings.Contains(b, "The VM is valid") {
		t.Errorf("preflight by billing: %s", b)
	}
}
