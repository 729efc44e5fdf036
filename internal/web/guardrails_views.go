package web

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

// View models of the guardrail pages and panels: quotas, approvals, leases
// and webhooks.

// quotaPanel is the team's quota as the request form shows it before submit.
type quotaPanel struct {
	Team    string
	Limited bool
	Rows    []quotaRow
	// Blocker names what the request would exceed; "" when it fits.
	Blocker string
	// Decision is what policy would decide, e.g. "auto-approved: …".
	Decision string
	Approve  bool
	// SizeOver says, for each size of the template that would not fit the
	// quota with the chosen number of VMs, what it would take the team to
	// (e.g. "vCPU 10 of 8"); sizes that fit are not in it.
	SizeOver map[string]string
}

// quotaRow is one resource: what the team uses, what the request adds, the
// total and the limit.
type quotaRow struct {
	Resource string
	Used     string
	Adds     string
	After    string
	Limit    string
	Over     bool
}

func quotaPanelOf(p store.Preview) *quotaPanel {
	qp := &quotaPanel{Team: p.Team, Limited: p.Quota.Limited(), Decision: p.Decision.String(), Approve: p.Decision.Approve}
	for _, l := range p.Quota.Lines(p.Used, p.Adds) {
		row := quotaRow{Resource: l.Resource, Used: l.Format(l.Used), Adds: "+" + l.Format(l.Adds), After: l.Format(l.After()),
			Limit: "no limit", Over: l.Over()}
		if l.Limit != nil {
			row.Limit = l.Format(*l.Limit)
		}
		qp.Rows = append(qp.Rows, row)
	}
	if len(p.Blockers) > 0 {
		qp.Blocker = store.QuotaMessage(p.Team, p.Blockers)
	}
	return qp
}

// leaseView is the lease part of the request page: the banner, the extend
// button and a pending extension.
type leaseView struct {
	// Banner warns the owner of an ending or ended lease; "" for none.
	Banner string
	// Urgent styles the banner as a warning rather than information.
	Urgent bool
	// CanExtend shows the extend button, extending by ExtendDays.
	CanExtend  bool
	ExtendDays int
	// MaxDays is the template's maximum lease from now; longer needs approval.
	MaxDays int
	// Pending describes an extension waiting for approval.
	Pending string
}

// leaseOf works out the lease panel for req as u sees it at now.
func leaseOf(u store.User, req store.Request, approvals []store.Approval, maxLease int, grace time.Duration, now time.Time) leaseView {
	v := leaseView{MaxDays: maxLease, ExtendDays: min(7, max(maxLease, 1))}
	for _, a := range approvals {
		if a.Open() && a.Kind == store.ApprovalExtension {
			v.Pending = fmt.Sprintf("An extension of the lease by %s is waiting for approval (asked by %s %s).",
				nouns(a.ExtendDays, "day", "days"), a.RequestedBy, until(a.CreatedAt.Sub(now)))
		}
	}
	left := req.ExpiresAt.Sub(now)
	switch req.State {
	case store.StateExpired:
		if req.Desired == "deleted" {
			return v
		}
		v.Banner = fmt.Sprintf("The lease ended %s: the VM is stopped, and will be deleted at %s. Extend the lease to start it again.",
			until(left), fmtTime(req.ExpiresAt.Add(grace)))
		v.Urgent = true
	// A failed VM has nothing to keep: no banner, no extension, whatever
	// its lease (a VM that failed at once would be warned seconds in).
	case store.StateApproved, store.StateProvisioning, store.StateRunning, store.StateStopped:
		switch {
		case left <= store.LeaseWarnSecond:
			v.Banner = fmt.Sprintf("The lease ends %s (%s): the VM will then be stopped.", until(left), fmtTime(req.ExpiresAt))
			v.Urgent = true
		case left <= store.LeaseWarnFirst:
			v.Banner = fmt.Sprintf("The lease ends %s (%s).", until(left), fmtTime(req.ExpiresAt))
		}
	default:
		return v
	}
	if req.Desired != "deleted" && v.Pending == "" {
		v.CanExtend = canExtend(u, req)
	}
	return v
}

// approvalsView is the approval queue.
type approvalsView struct {
	Base  base
	Items []approvalItem
	// Done reports the decision just made, e.g. "Approved request #12 (web-1)."
	Done string
	// Live is the notice that watches the queue for changes.
	Live queueLive
}

// approvalItem is one entry of the queue.
type approvalItem struct {
	A   store.Approval
	ID  string
	URL string
	// What says what is asked, e.g. "New VM: ubuntu-2404, size medium (2 vCPU, 4 GiB), 7 days".
	What    string
	Waiting string
	// Mine is true when the viewer asked for it: no buttons, and why.
	Mine    bool
	Comment string
	Error   string
}

func approvalItemOf(u store.User, a store.Approval, now time.Time) approvalItem {
	r := a.Request
	it := approvalItem{A: a, ID: strconv.FormatInt(a.ID, 10), URL: "/requests/" + strconv.FormatInt(r.ID, 10),
		Waiting: until(a.CreatedAt.Sub(now)), Mine: !canDecide(u, a)}
	switch a.Kind {
	case store.ApprovalExtension:
		it.What = fmt.Sprintf("Lease extension by %s (the lease ends %s)", nouns(a.ExtendDays, "day", "days"), fmtTime(r.ExpiresAt))
	case store.ApprovalRebuild:
		it.What = fmt.Sprintf("Rebuild %s from %s v%d, an older version (it is on v%d); size %s. The VM is deleted and made again.",
			r.Name, r.TemplateName, a.Version, r.TemplateVersion, r.Size)
	case store.ApprovalScale:
		it.What = fmt.Sprintf("Grow pool from %d to %d VMs: %s v%d, size %s (%d vCPU, %s each)",
			r.Replicas, a.Replicas, r.TemplateName, r.TemplateVersion, r.Size, r.VCPU, memString(r.MemoryMiB))
	default:
		lease := nouns(r.LeaseDays, "day", "days")
		it.What = fmt.Sprintf("New VM: %s v%d, size %s (%d vCPU, %s), lease %s",
			r.TemplateName, r.TemplateVersion, r.Size, r.VCPU, memString(r.MemoryMiB), lease)
		if r.Pool {
			it.What = fmt.Sprintf("New pool of %d VMs: %s v%d, size %s (%d vCPU, %s each), lease %s",
				r.Replicas, r.TemplateName, r.TemplateVersion, r.Size, r.VCPU, memString(r.MemoryMiB), lease)
		}
	}
	return it
}

// quotasView is the platform team's quota page: one table of teams, over
// quota first, and the form of the one team being edited.
type quotasView struct {
	Base  base
	Teams []quotaTeam
	Saved string
	// Edit is the team whose form is open (asked for, or refused), if any.
	Edit *quotaTeam
	// Over is how many teams are over a limit now.
	Over int
}

// quotaTeam is one team's row: its use and its editable limits.
type quotaTeam struct {
	ID      string
	Name    string
	Used    string
	Cells   []quotaCell
	Form    quotaForm
	Over    []string
	Updated string
	Errors  *store.ValidationError
}

// quotaCell is one resource of a team's row: its use against its limit,
// drawn as a meter when there is a limit.
type quotaCell struct {
	Resource string
	// Text is the use in words, e.g. "12 GiB of 16 GiB" or "12 GiB, no limit".
	Text    string
	Limited bool
	Over    bool
	// Value and Max feed the meter; Max is at least 1 so that a zero limit
	// still draws (as full when anything is used).
	Value, Max, High int
}

// quotaForm holds the limits as typed; "" means no limit.
type quotaForm struct {
	VCPU, MemoryGiB, VMs, DiskGiB string
}

func (q quotaTeam) err(field string) string { return q.Errors.For(field) }

func limitText(n *int, div int) string {
	if n == nil {
		return ""
	}
	if div > 1 && *n%div != 0 {
		return strconv.FormatFloat(float64(*n)/float64(div), 'f', 1, 64)
	}
	return strconv.Itoa(*n / div)
}

func quotaTeamOf(t store.TeamQuotaUsage) quotaTeam {
	q, u := t.Quota, t.Usage
	qt := quotaTeam{ID: strconv.FormatInt(t.Team.ID, 10), Name: t.Team.Name,
		Used: fmt.Sprintf("%d vCPU · %s · %s · %d GiB disk", u.VCPU, store.FormatMiB(u.MemoryMiB), nouns(u.VMs, "VM", "VMs"), u.DiskGiB),
		Form: quotaForm{VCPU: limitText(q.VCPU, 1), MemoryGiB: limitText(q.MemoryMiB, 1024), VMs: limitText(q.VMs, 1), DiskGiB: limitText(q.DiskGiB, 1)},
		Over: q.Blockers(u, store.Usage{})}
	// Every row has the same four columns, disk included.
	for _, l := range []store.QuotaLine{
		{Resource: "vCPU", Used: u.VCPU, Limit: q.VCPU},
		{Resource: "memory", Used: u.MemoryMiB, Limit: q.MemoryMiB},
		{Resource: "VMs", Used: u.VMs, Limit: q.VMs},
		{Resource: "disk", Used: u.DiskGiB, Limit: q.DiskGiB},
	} {
		c := quotaCell{Resource: l.Resource, Text: l.Format(l.Used) + ", no limit"}
		if l.Limit != nil {
			c.Limited, c.Over = true, l.Over()
			c.Text = l.Format(l.Used) + " of " + l.Format(*l.Limit)
			c.Value, c.Max = min(l.Used, max(*l.Limit, 1)), max(*l.Limit, 1)
			if *l.Limit == 0 && l.Used > 0 {
				c.Value = 1
			}
			// The meter turns to its warning colour from 80 % of the limit.
			c.High = max(c.Max*4/5, 1)
		}
		qt.Cells = append(qt.Cells, c)
	}
	if q.UpdatedAt != nil {
		qt.Updated = "changed " + fmtTime(*q.UpdatedAt)
		if q.UpdatedBy != "" {
			qt.Updated += " by " + q.UpdatedBy
		}
	}
	return qt
}

// sortQuotaTeams puts the teams over a limit first, each group by name.
func sortQuotaTeams(ts []quotaTeam) {
	slices.SortStableFunc(ts, func(a, b quotaTeam) int {
		if ao, bo := len(a.Over) > 0, len(b.Over) > 0; ao != bo {
			if ao {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// rulesView is the approval rules editor.
type rulesView struct {
	Base      base
	Rules     []store.ApprovalRule
	Teams     []string
	Templates []string
	Sizes     []string
	Form      ruleForm
	Errors    *store.ValidationError
	YAML      string
	Saved     string
}

// ruleForm is the add-or-replace form as typed.
type ruleForm struct {
	Team, Template, MaxSize string
	AutoApprove             bool
}

func (v rulesView) err(field string) string { return v.Errors.For(field) }

// webhooksView is the platform team's page of webhook deliveries that did
// not succeed.
type webhooksView struct {
	Base       base
	Deliveries []store.WebhookDelivery
	Counts     map[string]int
	// Configured is false when no webhook is set: nothing is sent.
	Configured bool
}

// guardrailTabs is the sub-navigation of the guardrail pages.
var guardrailTabs = []struct{ Path, Label string }{
	{"/platform/quotas", "Quotas"},
	{"/platform/rules", "Approval rules"},
	{"/platform/webhooks", "Webhooks"},
}

func joinSemi(ss []string) string { return strings.Join(ss, "; ") }

// orEvery returns s, or what its absence means.
func orEvery(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// guardrailNavCurrent marks the main nav link while on any guardrail page.
func guardrailNavCurrent(b base) string {
	for _, t := range guardrailTabs {
		if nav(b, t.Path) == "page" {
			return "page"
		}
	}
	return "false"
}
