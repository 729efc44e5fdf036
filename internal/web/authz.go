package web

import "paddock/internal/store"

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
