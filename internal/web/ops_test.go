package web_test

import (
	"net/http"
	"strings"
	"testing"

	"paddock/internal/web"
)

func TestHealthReadyAndMetrics(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		if b := body(t, resp); resp.StatusCode != 200 || b != "ok\n" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, b)
		}
	}
	// One page view, so the histogram has a route-labelled series.
	resp, err := e.browser("developer").Get(e.srv.URL + "/catalog")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	for _, want := range []string{
		`paddock_http_request_duration_seconds_bucket{code="200",method="GET",route="/catalog"`,
		`paddock_requests{state="running"} 0`,
		`paddock_jobs{state="available"}`,
		`paddock_database_up 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(b, `route="/requests/1"`) {
		t.Error("metrics are labelled by path, not route pattern")
	}
}
