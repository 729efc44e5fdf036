package web

import (
	"net/http"

	"paddock/internal/store"
)

// This file is the one place that decides who may do what.

// canSee reports whether u may read request r: developers see their own
// team's requests; managers and the platform team see all.
func canSee(u store.User, r store.Request) bool {
	switch u.Role {
	case store.RolePlatform, store.RoleManager:
		return true
	}
	return u.TeamID != nil && *u.TeamID == r.TeamID
}

// canAct reports whether u may start, stop, restart or delete r's VM:
// members of the owning team, and the platform team.
func canAct(u store.User, r store.Request) bool {
	if u.Role == store.RolePlatform {
		return true
	}
	return u.Role == store.RoleDeveloper && u.TeamID != nil && *u.TeamID == r.TeamID
}

// canRequest reports whether u may request VMs: anyone in a team.
func canRequest(u store.User) bool { return u.TeamID != nil }

// listScope narrows a request list to what u may see.
func listScope(u store.User, f store.RequestFilter) store.RequestFilter {
	if u.Role == store.RoleDeveloper {
		f.TeamID = -1
		if u.TeamID != nil {
			f.TeamID = *u.TeamID
		}
	}
	return f
}

// canReadAudit reports whether u may read and export the audit log:
// managers and the platform team.
func canReadAudit(u store.User) bool {
	return u.Role == store.RoleManager || u.Role == store.RolePlatform
}

// anyUser is the policy of pages every signed-in user may open (their
// profile, the catalog); what they see there is still narrowed per user.
func anyUser(store.User) bool { return true }

// allow guards a group of page routes with a role policy: a signed-in user
// whom the policy refuses gets 403. It runs after requireUser.
func (s *Server) allow(policy func(store.User) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, ok := userFrom(r.Context()); !ok || !policy(u) {
				s.page(func(http.ResponseWriter, *http.Request) error { return errForbidden })(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
