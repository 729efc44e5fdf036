package web

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"paddock/internal/store"
)

// ClaimMapping turns the groups an identity provider asserts into a Paddock
// role and team. It is shared by OpenID Connect and the authenticating proxy.
//
//   - Roles maps a group to a role. A person in several mapped groups gets
//     the most powerful of their roles (platform, then manager, then
//     developer). A person in none is refused at sign-in.
//   - A group that starts with TeamPrefix names a team: with prefix "team-",
//     group "team-payments" puts the person in team "payments" (created on
//     first sign-in, with a namespace of the same name). Of several such
//     groups the first in alphabetical order wins, so the choice is stable.
type ClaimMapping struct {
	// GroupsClaim is the ID-token (or userinfo) claim holding the groups;
	// default "groups".
	GroupsClaim string
	Roles       map[string]store.Role
	TeamPrefix  string
}

// ParseRoleMap reads "group=role,group=role" (PADDOCK_OIDC_ROLE_MAP).
func ParseRoleMap(s string) (map[string]store.Role, error) {
	m := map[string]store.Role{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		group, role, ok := strings.Cut(item, "=")
		group, role = strings.TrimSpace(group), strings.TrimSpace(role)
		if !ok || group == "" {
			return nil, fmt.Errorf("role map entry %q is not group=role", item)
		}
		switch r := store.Role(role); r {
		case store.RoleDeveloper, store.RoleManager, store.RolePlatform:
			m[group] = r
		default:
			return nil, fmt.Errorf("role map entry %q: role must be developer, manager or platform", item)
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("the role map is empty: without it nobody may sign in")
	}
	return m, nil
}

var roleRank = map[store.Role]int{store.RoleDeveloper: 1, store.RoleManager: 2, store.RolePlatform: 3}

// teamName is what a team (and so a namespace) may be called: a DNS label.
var teamName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// resolve returns the role and team the groups give, and false when they
// give no role.
func (m ClaimMapping) resolve(groups []string) (store.Role, string, bool) {
	var role store.Role
	var teams []string
	for _, g := range groups {
		if r, ok := m.Roles[g]; ok && roleRank[r] > roleRank[role] {
			role = r
		}
		if m.TeamPrefix != "" {
			if t, ok := strings.CutPrefix(g, m.TeamPrefix); ok && teamName.MatchString(t) {
				teams = append(teams, t)
			}
		}
	}
	if role == "" {
		return "", "", false
	}
	slices.Sort(teams)
	team := ""
	if len(teams) > 0 {
		team = teams[0]
	}
	return role, team, true
}

// allowedGroups lists the groups that grant a role, for the refusal page.
func (m ClaimMapping) allowedGroups() []string {
	gs := make([]string, 0, len(m.Roles))
	for g := range m.Roles {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	return gs
}

// groupsOf reads a groups claim that may be a list or a single string.
func groupsOf(v any) []string {
	switch g := v.(type) {
	case string:
		return splitGroups(g)
	case []any:
		out := make([]string, 0, len(g))
		for _, x := range g {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return g
	}
	return nil
}

// splitGroups splits a comma-separated list (the proxy's groups header).
func splitGroups(s string) []string {
	var out []string
	for g := range strings.SplitSeq(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// cleanLogin checks a login taken from an identity provider: it is shown
// on pages and written to the audit log, so it must be short, printable text.
func cleanLogin(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 100 {
		return "", false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return s, true
}
