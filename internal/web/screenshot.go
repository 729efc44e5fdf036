package web

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"paddock/internal/provision"
)

// This file serves the thumbnail of a VM's screen on its page: a PNG from
// the cluster's vnc/screenshot subresource, fetched anew every few
// seconds by the page while it is open (static/thumbnail.js).

// thumbnailEvery is how often the VM page asks for a new screenshot.
const thumbnailEvery = 5 * time.Second

// screenshotTimeout bounds one screenshot: a thumbnail that takes longer is
// not worth waiting for, the next one is due soon.
const screenshotTimeout = 10 * time.Second

// vmScreenshot answers GET /requests/{id}/screenshot (?vm= names a pool's
// member) with a PNG of the VM's screen. Who may see it is decided as for
// the console: the screen shows what the console shows. A VM that does not
// run answers a placeholder image that says so; a cluster that cannot take
// a screenshot, 503 with a placeholder that says that.
func (s *Server) vmScreenshot(w http.ResponseWriter, r *http.Request) error {
	t, err := s.consoleVM(r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	if !t.running {
		writePlaceholder(w, http.StatusOK, "The VM is not running", "No screen to show.")
		return nil
	}
	if s.cluster == nil {
		writePlaceholder(w, http.StatusServiceUnavailable, "No cluster connected", "No screen to show.")
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), screenshotTimeout)
	defer cancel()
	png, err := s.cluster.Screenshot(ctx, t.namespace, t.vm)
	switch {
	case errors.Is(err, provision.ErrNotRunning):
		writePlaceholder(w, http.StatusOK, "The VM is not running", "No screen to show.")
		return nil
	case err != nil:
		s.log.WarnContext(r.Context(), "screenshot", "request", t.req.ID, "vm", t.namespace+"/"+t.vm, "err", err)
		writePlaceholder(w, http.StatusServiceUnavailable, "No picture right now", "The cluster did not send one; the next try is in a few seconds.")
		return nil
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(png)))
	_, _ = w.Write(png)
	return nil
}

// writePlaceholder answers an SVG image in place of the screen, with a
// title and a line of text, in the thumbnail's 8:5 shape.
func writePlaceholder(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200" viewBox="0 0 320 200" data-placeholder="screen">` +
		`<rect width="320" height="200" fill="#e8ecf1"/>` +
		`<text x="160" y="92" text-anchor="middle" font-family="sans-serif" font-size="18" fill="#1b263b">` + html.EscapeString(title) + `</text>` +
		`<text x="160" y="122" text-anchor="middle" font-family="sans-serif" font-size="12" fill="#4a5a70">` + html.EscapeString(text) + `</text>` +
		`</svg>`))
}

// thumbnailOf is the thumbnail of request id's VM, or of its pool member
// vm when pool is set.
func thumbnailOf(id int64, vm string, pool bool) *thumbnailView {
	base := "/requests/" + strconv.FormatInt(id, 10)
	v := &thumbnailView{VM: vm, Src: base + "/screenshot", Console: base + "/console/vnc", EverySeconds: int(thumbnailEvery / time.Second)}
	if pool {
		q := "?vm=" + url.QueryEscape(vm)
		v.Src += q
		v.Console += q
	}
	return v
}
