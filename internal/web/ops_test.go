package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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

// TestMetricLabelsAreBounded: invented methods and paths that match no
// route, sent by anyone without signing in, add at most a handful of series
// however many different ones arrive.
func TestMetricLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := setup(t, web.Config{DevSignIn: true, Registry: reg})
	series := func() (int, map[string]bool, map[string]bool) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		methods, routes := map[string]bool{}, map[string]bool{}
		for _, mf := range mfs {
			if mf.GetName() != "paddock_http_request_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "method":
						methods[l.GetValue()] = true
					case "route":
						routes[l.GetValue()] = true
					}
				}
			}
			return len(mf.GetMetric()), methods, routes
		}
		return 0, methods, routes
	}
	send := func(method, path string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	send(http.MethodGet, "/healthz")
	before, _, _ := series()
	for i := range 20 {
		send(fmt.Sprintf("INVENTED%d", i), "/healthz")
		send(fmt.Sprintf("X-%d", i), fmt.Sprintf("/no/such/page/%d", i))
		send(http.MethodGet, fmt.Sprintf("/no/such/page/%d", i))
		send(http.MethodGet, fmt.Sprintf("/unknown-%d", i))
	}
	after, methods, routes := series()
	if after-before > 4 {
		t.Errorf("80 requests with invented methods and unmatched paths added %d series", after-before)
	}
	for m := range methods {
		switch m {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER":
		default:
			t.Errorf("method label %q", m)
		}
	}
	for r := range routes {
		if strings.Contains(r, "/no/such") || strings.Contains(r, "unknown-") {
			t.Errorf("route label %q is a path", r)
		}
	}
	if !routes["unmatched"] {
		t.Errorf("no route=\"unmatched\" series among %v", routes)
	}
}

// TestSeparateMetrics: with SeparateMetrics the pages' handler does not
// serve /metrics; MetricsHandler does, and serves nothing else.
func TestSeparateMetrics(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true, SeparateMetrics: true})
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusNotFound || strings.Contains(b, "paddock_database_up") {
		t.Errorf("main handler /metrics: %d", resp.StatusCode)
	}
	m := httptest.NewServer(e.web.MetricsHandler())
	defer m.Close()
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 404, "/catalog": 404} {
		resp, err := http.Get(m.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		if resp.StatusCode != want || want == 200 && !strings.Contains(b, "paddock_database_up") {
			t.Errorf("metrics listener %s: %d", path, resp.StatusCode)
		}
	}
}
