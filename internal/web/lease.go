package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

// requestExtend extends a request's lease from its page, in one click, and
// returns to the page: within policy the new expiry shows at once, beyond
// it the page shows the extension waiting for approval.
func (s *Server) requestExtend(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canExtend(u, req) {
		return s.backToRequest(w, r, req.ID, "extend", "", errForbidden)
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
	if err != nil {
		return s.backToRequest(w, r, req.ID, "extend", "", errStatus(http.StatusUnprocessableEntity, "The number of days to extend by must be a whole number."))
	}
	ext, err := s.store.ExtendLease(r.Context(), req.ID, days, u, time.Now())
	done := "The lease now ends " + fmtTime(ext.ExpiresAt) + "."
	if !ext.Extended {
		done = "The extension by " + nouns(days, "day", "days") + " is waiting for approval: " + ext.Reason + "."
	}
	return s.backToRequest(w, r, req.ID, "extend", done, err)
}

// validationMessage renders a *store.ValidationError as one sentence, or "".
func validationMessage(err error) string {
	var v *store.ValidationError
	if !errors.As(err, &v) || len(v.Fields) == 0 {
		return ""
	}
	parts := make([]string, len(v.Fields))
	for i, f := range v.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	s := strings.Join(parts, "; ")
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// apiExtension is the answer to POST /api/v1/requests/{id}/extend.
type apiExtension struct {
	// Extended is true when the lease was extended at once; otherwise the
	// extension waits for approval as ApprovalID.
	Extended   bool       `json:"extended"`
	ExpiresAt  time.Time  `json:"expiresAt"`
	ApprovalID int64      `json:"approvalId,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Request    apiRequest `json:"request"`
}

func (s *Server) apiExtend(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canExtend(u, req) {
		return errForbidden
	}
	var in struct {
		Days int `json:"days"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	ext, err := s.store.ExtendLease(r.Context(), req.ID, in.Days, u, time.Now())
	if err != nil {
		return err
	}
	req, err = s.store.Request(r.Context(), req.ID)
	if err != nil {
		return err
	}
	out := apiExtension{Extended: ext.Extended, ExpiresAt: req.ExpiresAt, ApprovalID: ext.ApprovalID, Reason: ext.Reason,
		Request: toAPIRequest(req, "")}
	status := http.StatusOK
	if !ext.Extended {
		status = http.StatusAccepted
	}
	writeJSON(w, status, out)
	return nil
}

// leaseGrace is how long an expired VM is kept, as the lease keeper is configured.
func (s *Server) leaseGrace() time.Duration {
	if s.cfg.LeaseGrace > 0 {
		return s.cfg.LeaseGrace
	}
	return store.DefaultLeaseGrace
}
