package web

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"paddock/internal/store"
)

// Pages and the API map store errors the same way: conflicts by their
// reason, invalid fields by their message, never by parsing error text.
func TestClassifyMapsStoreErrorsOnce(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		msg    string
	}{
		{fmt.Errorf("stop request 7: %w", &store.ConflictError{Reason: "cannot stop a request that is stopped"}),
			http.StatusConflict, "This cannot be done now: cannot stop a request that is stopped."},
		{&store.DecidedError{Verdict: "approved", By: "manager", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			http.StatusConflict, "This cannot be done now: already approved by manager at 2026-01-02 03:04:05 UTC."},
		{&store.QuotaError{Team: "payments", Blockers: []string{"vCPU 18 of 16"}},
			http.StatusConflict, "This cannot be done now: " + store.QuotaMessage("payments", []string{"vCPU 18 of 16"}) + "."},
		{fmt.Errorf("scale: %w", &store.ValidationError{Fields: []store.FieldError{{Field: "replicas", Message: "must be at most 12"}}}),
			http.StatusUnprocessableEntity, "Replicas must be at most 12."},
		{fmt.Errorf("load: %w", store.ErrNotFound), http.StatusNotFound, errNotFound.Error()},
		{errors.New("connection reset"), http.StatusInternalServerError,
			"Something went wrong on our side. It has been logged; please try again in a moment."},
	} {
		status, msg := classify(c.err)
		if status != c.status || msg != c.msg {
			t.Errorf("classify(%v) = %d %q, want %d %q", c.err, status, msg, c.status, c.msg)
		}
	}
}
