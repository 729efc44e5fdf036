package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// formError explains why a form could not be parsed: 413 when it is over
// MaxBodyBytes (limitBody), 400 otherwise.
func formError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errStatus(http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"The form is too large: at most %d KiB may be sent. Shorten the longest field and try again.", MaxBodyBytes>>10))
	}
	return errStatus(http.StatusBadRequest, "The form could not be read. Reload the page and try again.")
}

// cleanQuery refuses query strings that hold NUL bytes or invalid UTF-8:
// PostgreSQL cannot store or compare such text, and no link of Paddock's
// makes them, so they are answered 400 before any handler sees them.
func cleanQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			for k, vs := range r.URL.Query() {
				for _, v := range append(vs, k) {
					if strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
						http.Error(w, "The address holds characters Paddock cannot read.", http.StatusBadRequest)
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
