package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"paddock/internal/provision"
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
