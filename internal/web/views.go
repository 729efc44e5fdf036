package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"

	"paddock/internal/store"
	"paddock/static"
)

// base is what every page's layout needs.
type base struct {
	Title   string
	User    *store.User
	Path    string
	Cluster string
	// Flash is the one-time message of this page view, if any.
	Flash *flash
	// Waiting is how many approvals the user may decide (approvers only).
	Waiting int
	// URL, when set, is the address the browser shows for the page: a form
	// re-rendered with its errors after a POST puts back the page's own
	// address, so that reloading or sharing it does not post again.
	URL string
}

// fieldLink is one problem of a form in its error summary: the message, and
// the id of the field it links to ("" for none).
type fieldLink struct {
	ID  string
	Msg string
}

// fieldLinks lists the problems of verr for the summary; label names each
// field, and ids maps a field to its element's id (a field without one is
// listed without a link).
func fieldLinks(verr *store.ValidationError, label func(string) string, id func(string) string) []fieldLink {
	if verr == nil {
		return nil
	}
	out := make([]fieldLink, 0, len(verr.Fields))
	for _, f := range verr.Fields {
		out = append(out, fieldLink{ID: id(f.Field), Msg: strings.TrimSpace(label(f.Field) + " " + f.Message)})
	}
	return out
}

func (s *Server) viewBase(r *http.Request, title string) base {
	b := base{Title: title, Path: r.URL.Path, Cluster: s.cfg.ClusterName}
	if u, ok := userFrom(r.Context()); ok {
		b.User = &u
	}
	b.Flash = s.flashOf(r)
	if b.User != nil && canSeeApprovals(*b.User) && r.Header.Get("HX-Request") == "" {
		if n, ok := s.preloadedWaiting(r); ok {
			b.Waiting = n
			return b
		}
		// A count in the navigation is a nicety: without it the page still works.
		n, err := s.store.ApprovalsWaitingFor(r.Context(), b.User.ID)
		if err != nil {
			s.log.WarnContext(r.Context(), "count approvals for the navigation", "err", err)
		}
		b.Waiting = n
	}
	return b
}

// preloadedWaiting is the count of approvals the session's load read with
// it (pageSessionStore), for a GET: a request that may have decided an
// approval since counts again.
func (s *Server) preloadedWaiting(r *http.Request) (int, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return 0, false
	}
	p, ok := preloadOf(r.Context(), sessionKey(s.sessions.Token(r.Context())))
	if !ok || p.waiting == nil {
		return 0, false
	}
	return *p.waiting, true
}

type signInView struct {
	Base base
	Dev  bool
	// Personas are the three seeded users a newcomer starts as (developer,
	// platform, manager); Users are the other seeded users.
	Personas []store.User
	Users    []store.User
	Next     string
	// SSO offers single sign-on; Proxy says sign-in happens at the proxy.
	SSO   bool
	Proxy bool
}

// templateCard is a template as the catalog and forms show it.
type templateCard struct {
	Name         string
	DisplayName  string
	Description  string
	OSFamily     string
	LogoURL      string
	Tags         []string
	Sizes        []sizeView
	Source       string
	MaxLeaseDays int
	AutoApprove  bool
	Version      int
	Deprecated   bool
	Note         string
	Ephemeral    bool
}

type sizeView struct {
	Name    string
	Summary string
}

func cardOf(t store.Template) templateCard {
	sp := t.Spec
	c := templateCard{
		Name: sp.Name, DisplayName: sp.DisplayName, Description: sp.Description, OSFamily: sp.OSFamily,
		Tags: sp.Tags, MaxLeaseDays: sp.MaxLeaseDays, AutoApprove: sp.AutoApprove, Version: t.Version,
		Deprecated: t.DeprecatedAt != nil, Note: t.DeprecationNote, Ephemeral: sp.Image.Ephemeral(),
	}
	logo := "logos/" + sp.Logo + ".svg"
	if sp.Logo == "" || !static.Exists(logo) {
		logo = "logos/" + sp.OSFamily + ".svg"
	}
	if !static.Exists(logo) {
		logo = "logos/generic.svg"
	}
	c.LogoURL = static.URL(logo)
	switch sp.Image.Kind() {
	case "containerDisk":
		c.Source = "Container disk (ephemeral) " + sp.Image.ContainerDisk
	case "registry":
		c.Source = fmt.Sprintf("Imported from %s (%d GiB disk)", sp.Image.Registry, sp.RootDiskGiB)
	case "http":
		c.Source = fmt.Sprintf("Imported from %s (%d GiB disk)", sp.Image.HTTP, sp.RootDiskGiB)
	case "dataSource":
		c.Source = fmt.Sprintf("Cloned from golden image %s/%s (%d GiB disk)", sp.Image.DataSource.Namespace, sp.Image.DataSource.Name, sp.RootDiskGiB)
	}
	for _, sz := range sp.Sizes {
		c.Sizes = append(c.Sizes, sizeView{Name: sz.Name, Summary: sizeSummary(sz)})
	}
	return c
}

func sizeSummary(sz store.Size) string {
	cpu, mem := sz.Resources()
	s := fmt.Sprintf("%d vCPU · %s", cpu, memString(mem))
	if sz.Instancetype != "" {
		s += " (" + sz.Instancetype + ")"
	}
	return s
}

func memString(mib int) string {
	if mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

type catalogView struct {
	Base base
	// Cards are the HTML of the cards that pass the filters (catalogCard).
	Cards []string
	OSes  []string
	Tags  []string
	Q, OS string
	Tag   string
}

type requestForm struct {
	Template      string
	Size          string
	Name          string
	SSHPublicKey  string
	LeaseDays     string
	Justification string
	// Replicas is how many VMs: 1 (the default) is a single VM, more is a pool.
	Replicas string
}

type requestFormView struct {
	Base      base
	Templates []templateCard
	Selected  *templateCard
	Form      requestForm
	Errors    *store.ValidationError
	// Quota is the team's quota with what the selected size adds, and what
	// policy would decide (nil before a template is chosen).
	Quota *quotaPanel
}

func (v requestFormView) err(field string) string { return v.Errors.For(field) }

type requestView struct {
	Base     base
	Live     liveView
	Manifest bool
	Justif   string
	Decision string
	Template string
	Stream   string
	LiveSrc  string
	// TemplateNews says what changed about the template since the VM was
	// made: a newer version, a deprecation (template_badges.go).
	TemplateNews templateNews
}

// liveView is the part of the request page that updates live.
type liveView struct {
	R      store.Request
	Events []store.Event
	// Phase is the change under way (phase.go), shown in place of the
	// state: "stopping", "starting", "deleting", "rebuilding"; "" for none.
	Phase      string
	CanAct     bool
	SSH        string
	Virtctl    string
	KubeEvents []kubeEvent
	// Actions are start, stop and restart; Delete, in the danger area, is
	// nil when it is not offered.
	Actions   []actionButton
	Delete    *actionButton
	ExpiresIn string
	Ephemeral bool
	// Lease is the lease banner and extend button (guardrails_views.go).
	Lease leaseView
	// Approvals are the request's approvals, decided or waiting.
	Approvals []store.Approval
	// Cattle is the rebuild form and pet toggle (request_rebuild.go).
	Cattle cattleView
	// Pool is the members table and scale form of a pool (request_pool.go);
	// nil for a single VM.
	Pool *poolView
	// Console offers the VM's console and serial console (console.go).
	Console bool
	// Thumbnail is the picture of the VM's screen (screenshot.go); nil
	// when there is no console to offer.
	Thumbnail *thumbnailView
	// Flash is a refusal to show next to the control it is about; only the
	// full page has it, so a live update clears it.
	Flash *flash
}

type kubeEvent struct {
	At      time.Time
	Type    string
	Reason  string
	Message string
}

type actionButton struct {
	Action  string
	Label   string
	Class   string
	Confirm string
	// Why says why the button is disabled now; "" when it is enabled.
	Why string
	// Hint says what the button does, beside it.
	Hint string
}

type requestsView struct {
	Base     base
	Requests []store.Request
	CanAsk   bool
	Scope    string
	Form     requestListForm
	States   []store.State
	// Total is how many requests match the filter; From and To number the
	// rows of this page among them.
	Total, From, To  int
	PrevURL, NextURL string
	// PoolIPs holds the member addresses of each pool listed, by its id.
	PoolIPs map[int64][]string
	// Templates is the current state of every template, for the outdated badges.
	Templates map[int64]store.TemplateState
	// Exports are the teams whose VM manifests the user may download.
	Exports []exportLink
}

// render writes a templ component with a status.
// render answers with the page c renders, written in one piece with its
// length: a page of 80 KiB went out in twenty 4 KiB chunks, each a system
// call, and a page whose rendering fails is now an error page instead of a
// half page under 200 OK.
func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) error {
	buf := renderBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledRender {
			renderBuffers.Put(buf)
		}
	}()
	if err := c.Render(r.Context(), buf); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// renderBuffers are render's buffers; one that grew past maxPooledRender
// (a rare long page) is left to the garbage collector.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledRender = 1 << 20

// Helpers used by the templates.

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// fmtMinute is fmtTime to the minute, for times recorded or computed no
// more precisely.
func fmtMinute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func stateClass(s store.State) string { return "badge state-" + string(s) }

func nav(b base, path string) string {
	if b.Path == path || strings.HasPrefix(b.Path, path+"/") {
		return "page"
	}
	return "false"
}

func roleLabel(u *store.User) string {
	if u == nil {
		return ""
	}
	s := string(u.Role)
	if u.TeamName != "" {
		s += ", team " + u.TeamName
	}
	return s
}

func isSelected(list []string, v string) bool { return slices.Contains(list, v) }

func itoa(i int) string { return fmt.Sprint(i) }

// nouns writes a number with its noun in the right form: "1 VM", "3 VMs".
func nouns(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func i64(i int64) string { return fmt.Sprint(i) }

// rawStringer lets a template print a precomputed safe string.
func text(s string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, templ.EscapeString(s))
		return err
	})
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
