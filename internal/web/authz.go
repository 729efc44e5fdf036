package web

import (
	"fmt"
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

// canManageTemplates reports whether u may open the platform pages under
// /platform/templates and change templates there (create, edit, clone,
// deprecate, restore, retire, import): the platform team only.
func canManageTemplates(u store.User) bool { return u.Role == store.RolePlatform }

// canSeeTemplate reports whether u may open template t's catalog page:
// developers see templates offered to their team; managers and the platform
// team see every template.
func canSeeTemplate(u store.User, t store.Template) bool {
	switch u.Role {
	case store.RolePlatform, store.RoleManager:
		return true
	}
	return t.Spec.AllowsTeam(u.TeamName)
}

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

// allowAPI guards a group of API routes with a role policy, answering 403
// in the API's error format. It runs after requireToken.
func (s *Server) allowAPI(policy func(store.User) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, ok := userFrom(r.Context()); !ok || !policy(u) {
				s.api(func(http.ResponseWriter, *http.Request) error { return errForbidden })(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// canSeeApprovals reports whether u may open the approval queue and decide
// what is in it: managers and the platform team.
func canSeeApprovals(u store.User) bool {
	return u.Role == store.RoleManager || u.Role == store.RolePlatform
}

// canDecide reports whether u may approve or reject a: an approver who did
// not ask for it. Nobody decides their own request or extension.
func canDecide(u store.User, a store.Approval) bool {
	return canSeeApprovals(u) && u.ID != a.RequestedByID && u.ID != a.Request.RequesterID
}

// canManageGuardrails reports whether u may edit team quotas and approval
// rules and see webhook deliveries: the platform team only.
func canManageGuardrails(u store.User) bool { return u.Role == store.RolePlatform }

// canExtend reports whether u may extend r's lease: whoever may act on its
// VM (the owning team and the platform team).
func canExtend(u store.User, r store.Request) bool { return canAct(u, r) }

// historyScope narrows a history filter to what u may see: developers see
// their own team's requests only, whatever team the filter names; managers
// and the platform team see every team's.
func historyScope(u store.User, f store.HistoryFilter) store.HistoryFilter {
	if u.Role != store.RolePlatform && u.Role != store.RoleManager {
		f.TeamID = -1 // no team has this id: a user without a team sees nothing
		if u.TeamID != nil {
			f.TeamID = *u.TeamID
		}
	}
	return f
}

// canPickHistoryTeam reports whether u may choose which team's history to
// see (otherwise the history is their own team's).
func canPickHistoryTeam(u store.User) bool {
	return u.Role == store.RoleManager || u.Role == store.RolePlatform
}

// canSeeInsight reports whether u may open the insight page: managers and
// the platform team. Developers are refused: the page compares teams and
// shows every team's usage, and a developer's own team's history is on
// /history.
func canSeeInsight(u store.User) bool {
	return u.Role == store.RoleManager || u.Role == store.RolePlatform
}

// canRebuild reports whether u may rebuild r's VM from a template version:
// its owner, and the platform team unless the owner keeps it as a pet.
// Teammates and managers may not: a rebuild starts the VM afresh.
func canRebuild(u store.User, r store.Request) bool {
	if u.ID == r.RequesterID {
		return true
	}
	return u.Role == store.RolePlatform && !r.Pet
}

// rebuildRefusal explains to u, who may see r, why they may not rebuild it;
// nil when they may.
func rebuildRefusal(u store.User, r store.Request) error {
	switch {
	case canRebuild(u, r):
		return nil
	case u.Role == store.RolePlatform:
		return errStatus(http.StatusForbidden, fmt.Sprintf(
			"%s is a pet: its owner, %s, keeps it by hand, so only they may rebuild it. Ask them, or ask them to mark it as cattle.",
			r.Name, r.RequesterLogin))
	}
	return errStatus(http.StatusForbidden, fmt.Sprintf("Only the VM's owner, %s, or the platform team may rebuild it.", r.RequesterLogin))
}

// olderAtOnce reports whether u rebuilds a VM from an older template version
// without approval: the platform team, who replaced it. The store decides
// the same by the user's role; this only labels the form.
func olderAtOnce(u store.User) bool { return u.Role == store.RolePlatform }

// canMarkPet reports whether u may mark r's VM as a pet or as cattle: its
// owner only.
func canMarkPet(u store.User, r store.Request) bool { return u.ID == r.RequesterID }

// canExportTeam reports whether u may export the manifests of a team's VMs:
// members of the team, managers and the platform team (who see every VM).
func canExportTeam(u store.User, teamID int64) bool {
	switch u.Role {
	case store.RolePlatform, store.RoleManager:
		return true
	}
	return u.TeamID != nil && *u.TeamID == teamID
}

// canScale reports whether u may scale r's pool: its owner and the platform
// team. Teammates and managers may not: the pool counts against the team's
// quota, which its owner answers for.
func canScale(u store.User, r store.Request) bool {
	return u.ID == r.RequesterID || u.Role == store.RolePlatform
}

// scaleRefusal explains why someone who may see r may not scale it.
func scaleRefusal(r store.Request) error {
	return errStatus(http.StatusForbidden, fmt.Sprintf("Only the pool's owner, %s, or the platform team may scale it.", r.RequesterLogin))
}
