// Package static embeds Paddock's CSS, scripts and images and serves them
// under content-hashed paths with long cache lifetimes.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"sync"
)

//go:embed *.css *.js vendor logos
var files embed.FS

var (
	hashOnce sync.Once
	hashes   map[string]string
)

func hashAll() {
	hashes = map[string]string{}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		hashes[p] = hex.EncodeToString(sum[:])[:10]
		return nil
	})
}

// URL returns the cache-busting URL of an embedded file, e.g.
// "/static/3f2a9c01de/app.css".
func URL(name string) string {
	hashOnce.Do(hashAll)
	return "/static/" + hashes[name] + "/" + name
}

// Exists reports whether name is an embedded file.
func Exists(name string) bool {
	hashOnce.Do(hashAll)
	_, ok := hashes[name]
	return ok
}

// Glob returns the embedded files whose names match pattern (path.Match
// syntax), sorted.
func Glob(pattern string) []string {
	names, _ := fs.Glob(files, pattern)
	return names
}

// Handler serves /static/{hash}/{name}. The hash makes each URL immutable,
// so responses are cached for a year.
func Handler() http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/static/")
		_, name, ok := strings.Cut(rest, "/")
		if !ok || !Exists(name) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		fsrv.ServeHTTP(w, r2)
	})
}
