package web_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"paddock/internal/web"
)

// The OpenAPI document is the contract: every exchange the tests have with
// /api/v1 is checked against openapi.json (see checkAPI), and the document
// and the route table list the same operations.

// apiContract is openapi.json, loaded and validated once for the package.
var apiContract = sync.OnceValues(func() (*contract, error) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	return &contract{doc: doc, raw: b, router: router}, nil
})

type contract struct {
	doc    *openapi3.T
	raw    []byte
	router routers.Router
}

// bearerPresent stands in for the server's token check: the document asks
// for a bearer token, and whether it is a good one is the server's to say.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return errors.New("no bearer token")
	}
	return nil
}

// check validates one exchange with the API against the document:
//   - the operation is in the document (or the API answered 404/405, for a
//     test probing a path the API lacks);
//   - a request the document rejects (a missing token, a bad parameter, a
//     body off its schema) is refused with a 4xx;
//   - the answer's status is documented for the operation, and its headers
//     and body match what the document says of that status.
func (c *contract) check(req *http.Request, reqBody []byte, status int, hdr http.Header, respBody []byte) error {
	ctx := context.Background()
	r := req.Clone(ctx)
	r.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return nil
		}
		return fmt.Errorf("%s %s is not in openapi.json, yet the API answered %d", req.Method, req.URL.Path, status)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true, SkipSettingDefaults: true},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && (status < 400 || status >= 500) {
		return fmt.Errorf("the document rejects the request (%v), yet the API answered %d", reqErr, status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 hdr,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("the answer %d does not match the document: %v\nbody: %.500s", status, err, respBody)
	}
	return nil
}

// checkAPI wraps the server under test: each /api/v1 exchange is checked
// against the contract before the client sees the answer, and a mismatch
// fails the test that made it.
func checkAPI(t testing.TB, next http.Handler) http.Handler {
	c, err := apiContract()
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		reqBody, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("openapi contract: read the request: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if err := c.check(r, reqBody, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("openapi contract: %s %s: %v", r.Method, r.URL.RequestURI(), err)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	e := setup(t, web.Config{})
	c, err := apiContract()
	if err != nil {
		t.Fatal(err)
	}
	resp, b := e.apiDo("", "GET", "/api/v1/openapi.json", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || b != string(c.raw) {
		t.Errorf("GET /api/v1/openapi.json: %d %s, not the document", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestOpenAPIDocumentsEveryRoute compares the route table with the
// document both ways: every /api/v1 route is documented, and every
// documented operation is routed.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	e := setup(t, web.Config{})
	c, err := apiContract()
	if err != nil {
		t.Fatal(err)
	}
	base := c.doc.Servers[0].URL
	param := regexp.MustCompile(`\{[^}]*\}`)
	// Parameter names differ ({approvalID} in routes.go, {id} in the
	// document) and don't matter to a client: compare shapes.
	shape := func(method, path string) string { return method + " " + param.ReplaceAllString(path, "{}") }
	var routed, documented []string
	for _, r := range registeredRoutes(t, e.web) {
		method, pattern, _ := strings.Cut(r, " ")
		if rest, ok := strings.CutPrefix(pattern, base+"/"); ok {
			routed = append(routed, shape(method, "/"+rest))
		}
	}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, shape(method, path))
		}
	}
	slices.Sort(routed)
	slices.Sort(documented)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is routed but not in openapi.json", strings.Replace(r, " ", " "+base, 1))
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("openapi.json documents %s, which is not routed", strings.Replace(d, " ", " "+base, 1))
		}
	}
	if len(routed) == 0 {
		t.Error("no /api/v1 routes found")
	}
}
