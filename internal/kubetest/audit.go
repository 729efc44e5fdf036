package kubetest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// auditPolicy has the API server record every request of every user but
// the administrators (system:masters: Env.Config, kubevirt-webhooks and the
// API server's own loopback client), once it has been answered, at the
// Metadata level: who asked, with which verb, about which resource.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    userGroups: ["system:masters"]
  - level: Metadata
`

const (
	auditPolicyFile = "audit-policy.yaml"
	auditLogFile    = "audit.log"
)

// configureAudit writes the audit policy into the Env's directory and
// tells kube-apiserver to log to a file next to it.
func (e *Env) configureAudit() error {
	policy := filepath.Join(e.tmpDir, auditPolicyFile)
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return fmt.Errorf("kubetest: audit policy: %w", err)
	}
	e.env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", filepath.Join(e.tmpDir, auditLogFile)).
		Set("audit-log-format", "json").
		// Written as each request completes, so the log is whole
		// whenever a test reads it.
		Set("audit-log-mode", "blocking")
	return nil
}

// APICall is one kind of request to the API server: a verb on a resource
// (and subresource) of an API group ("" for the core group), as RBAC rules
// name them.
type APICall struct {
	Verb, Group, Resource, Subresource string
}

// String names the call as a reader of RBAC rules would: "patch
// virtualmachines.kubevirt.io", "list events".
func (c APICall) String() string {
	res := c.Resource
	if c.Subresource != "" {
		res += "/" + c.Subresource
	}
	if c.Group != "" {
		res += "." + c.Group
	}
	return c.Verb + " " + res
}

// Audited counts the requests of one kind a user made.
type Audited struct {
	// Allowed counts those the API server let through authorization,
	// Forbidden those it refused (403).
	Allowed, Forbidden int
}

// auditEvent is the part of an audit.k8s.io/v1 Event that AuditedCalls reads.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// AuditedCalls returns every kind of request user has made to resources of
// the API server since Start, from the API server's audit log, with how
// many were allowed and how many forbidden. A long-running request (a
// watch) counts once, however many stages of it are logged.
func (e *Env) AuditedCalls(user string) (map[APICall]Audited, error) {
	f, err := os.Open(filepath.Join(e.tmpDir, auditLogFile))
	if err != nil {
		return nil, fmt.Errorf("kubetest: audit log: %w", err)
	}
	defer f.Close()
	calls := map[APICall]Audited{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("kubetest: audit log: %w", err)
		}
		if ev.User.Username != user || ev.ObjectRef == nil || seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		c := APICall{Verb: ev.Verb, Group: ev.ObjectRef.APIGroup, Resource: ev.ObjectRef.Resource, Subresource: kubevirtSubresource(ev)}
		a := calls[c]
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code == http.StatusForbidden {
			a.Forbidden++
		} else {
			a.Allowed++
		}
		calls[c] = a
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kubetest: audit log: %w", err)
	}
	return calls, nil
}

// kubevirtSubresource is the subresource of an audited call as RBAC rules
// name it. For KubeVirt's subresource API that is the whole path after the
// instance's name ("vnc/screenshot", as KubeVirt's own ClusterRoles grant
// it), although the API server records and authorizes only its first
// segment ("vnc"), and so does virt-api.
func kubevirtSubresource(ev auditEvent) string {
	ref := ev.ObjectRef
	if ref.APIGroup != consoleAPIGroup || ref.Name == "" || ref.Subresource == "" {
		return ref.Subresource
	}
	path, _, _ := strings.Cut(ev.RequestURI, "?")
	_, rest, ok := strings.Cut(path, "/"+ref.Resource+"/"+ref.Name+"/")
	if !ok || !strings.HasPrefix(rest, ref.Subresource) {
		return ref.Subresource
	}
	return rest
}

// GrantedCalls returns every call the Roles and ClusterRoles in manifest
// (a YAML stream; other kinds are skipped) grant. Wildcards and
// resourceNames are refused: a grant must be as narrow as the call.
func GrantedCalls(manifest []byte) (map[APICall]bool, error) {
	docs, err := decodeYAMLDocs(manifest)
	if err != nil {
		return nil, fmt.Errorf("kubetest: rbac manifest: %w", err)
	}
	granted := map[APICall]bool{}
	for _, u := range docs {
		if k := u.GetKind(); k != "ClusterRole" && k != "Role" {
			continue
		}
		r := &rbacv1.ClusterRole{}
		if err := fromUnstructured(u.Object, r); err != nil {
			return nil, fmt.Errorf("kubetest: %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		for _, rule := range r.Rules {
			if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
				return nil, fmt.Errorf("kubetest: %s %s: rule %v names resources or URLs", u.GetKind(), u.GetName(), rule)
			}
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, v := range rule.Verbs {
						if g == "*" || v == "*" || strings.Contains(res, "*") {
							return nil, fmt.Errorf("kubetest: %s %s: wildcard in rule %v", u.GetKind(), u.GetName(), rule)
						}
						resource, sub, _ := strings.Cut(res, "/")
						granted[APICall{Verb: v, Group: g, Resource: resource, Subresource: sub}] = true
					}
				}
			}
		}
	}
	return granted, nil
}

// CompareGrants checks the calls a user made (audited) against what its
// roles grant: every kind of call made must be granted, and every grant
// used. It lists each difference.
func CompareGrants(granted map[APICall]bool, audited map[APICall]Audited) error {
	var problems []string
	for c, a := range audited {
		if !granted[c] {
			problems = append(problems, fmt.Sprintf("%s was called %d times (%d forbidden) but is not granted", c, a.Allowed+a.Forbidden, a.Forbidden))
		} else if a.Forbidden > 0 {
			problems = append(problems, fmt.Sprintf("%s is granted but was forbidden %d times", c, a.Forbidden))
		}
	}
	for c := range granted {
		if _, ok := audited[c]; !ok {
			problems = append(problems, fmt.Sprintf("%s is granted but was never called", c))
		}
	}
	sort.Strings(problems)
	var errs []error
	for _, p := range problems {
		errs = append(errs, errors.New(p))
	}
	return errors.Join(errs...)
}
