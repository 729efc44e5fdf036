package static

import (
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
)

// noVNC is served as ES modules that import each other by relative path: a
// module fetched under rfb.js's hashed URL must be found too, as JavaScript
// (browsers refuse a module of another MIME type).
func TestVendoredModulesResolveUnderTheEntryHash(t *testing.T) {
	entry := URL("vendor/novnc/core/rfb.js")
	dir := path.Dir(entry)
	for _, rel := range []string{"rfb.js", "util/logging.js", "../vendor/pako/lib/zlib/inflate.js"} {
		u := path.Join(dir, rel)
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", u, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("GET %s: Content-Type %q, want text/javascript", u, ct)
		}
	}
	for _, name := range []string{"vendor/xterm/xterm.js", "vendor/xterm/addon-fit.js", "vendor/xterm/xterm.css"} {
		if !Exists(name) {
			t.Errorf("%s is not embedded", name)
		}
	}
}
