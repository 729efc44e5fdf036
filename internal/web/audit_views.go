package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"paddock/internal/store"
)

// auditRow is one entry of the audit log as the page shows it: the action in
// words, the target as a link where it names a page, the details as pairs.
type auditRow struct {
	ID        string
	At        string
	Actor     string
	ActorURL  string
	Action    string
	Code      string
	Target    string
	TargetURL string
	Details   []auditDetail
}

// auditDetail is one key of an entry's details with its value in plain text.
type auditDetail struct{ Key, Value string }

// auditActionWords names the actions Paddock writes; others are spelled
// out from their snake_case name.
var auditActionWords = map[string]string{
	store.AuditSignIn:         "Signed in",
	store.AuditSignInRefused:  "Sign-in refused",
	store.AuditSignOutAll:     "Signed out everywhere",
	store.AuditUserCreate:     "User created",
	store.AuditRoleChange:     "Role changed",
	store.AuditUserDisable:    "User disabled",
	store.AuditUserEnable:     "User enabled",
	store.AuditTokenCreate:    "API token created",
	store.AuditTokenRevoke:    "API token revoked",
	store.AuditRequestSubmit:  "Request submitted",
	store.AuditVMAction:       "VM action",
	store.AuditApproval:       "Approval decided",
	store.AuditTemplateChange: "Template changed",
	store.AuditConsoleSession: "Console session",
	"audit_export":            "Audit log exported",
	"quota_change":            "Quota changed",
	"approval_rule_change":    "Approval rule changed",
	"pool_scale":              "Pool scaled",
	"vm_pet":                  "VM kept as a pet",
	"vm_rebuild":              "VM rebuilt",
	"team_create":             "Team created",
	"rollout_start":           "Rollout started",
	"rollout_pause":           "Rollout paused",
	"rollout_resume":          "Rollout resumed",
	"rollout_cancel":          "Rollout cancelled",
}

// auditWords is an action in words: "quota_change" reads "Quota changed".
func auditWords(action string) string {
	if w, ok := auditActionWords[action]; ok {
		return w
	}
	s := strings.ReplaceAll(action, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// auditTargetURL is the page a target names, for u: a request, a
// template's catalog entry, a rollout for the platform team; any other
// target links to the log filtered on it.
func auditTargetURL(target string, u store.User) string {
	kind, id, ok := strings.Cut(target, ":")
	if !ok || id == "" {
		return ""
	}
	switch kind {
	case "request":
		return "/requests/" + url.PathEscape(id)
	case "template":
		return "/catalog/" + url.PathEscape(id)
	case "rollout":
		if canManageTemplates(u) {
			return "/platform/rollouts/" + url.PathEscape(id)
		}
	}
	return "/audit?" + url.Values{"target": {target}}.Encode()
}

func auditRowOf(e store.AuditEntry, u store.User) auditRow {
	r := auditRow{ID: i64(e.ID), At: fmtTime(e.At), Actor: e.Actor, Action: auditWords(e.Action), Code: e.Action,
		Target: e.Target, TargetURL: auditTargetURL(e.Target, u)}
	if e.ActorID != nil {
		r.ActorURL = "/audit?" + url.Values{"actor": {e.Actor}}.Encode()
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.Details = append(r.Details, auditDetail{Key: strings.ReplaceAll(k, "_", " "), Value: auditValue(e.Details[k])})
	}
	return r
}

// auditValue renders one detail: text as it is, numbers and booleans
// plainly, lists joined, anything nested as compact JSON.
func auditValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		if x == "" {
			return "—"
		}
		return x
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case float64, int, int64:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = auditValue(p)
		}
		return strings.Join(parts, ", ")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func (v auditView) failed() bool { return v.Errors != nil && len(v.Errors.Fields) > 0 }

// auditFieldLabel names a field of the audit filter in its error summary.
func auditFieldLabel(f string) string {
	switch f {
	case "from":
		return "From"
	case "to":
		return "To"
	}
	return f
}
