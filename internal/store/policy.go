package store

import (
	"fmt"
	"strings"
)

// PolicyInput is what the approval policy looks at.
type PolicyInput struct {
	Team      Team
	Template  TemplateSpec
	Size      Size
	LeaseDays int
	// Quota is the team's quota. A request over it never reaches Decide (it
	// is refused at submit), so a limited quota here means "within quota".
	Quota Quota
	// Rule is the approval rule for the team and template, or nil.
	Rule *ApprovalRule
	// Replicas is the size of a pool asked for (0 for a single VM): a pool
	// larger than the template's auto-approve limit needs a person.
	Replicas int
}

// Decision is the policy's verdict on a request, with its reasons in words.
type Decision struct {
	Approve bool
	Reasons []string
}

// String renders the decision as shown on the request, e.g.
// "auto-approved: template allows auto-approval; lease 7 days ≤ maximum 14".
func (d Decision) String() string {
	verdict := "needs approval"
	if d.Approve {
		verdict = "auto-approved"
	}
	return verdict + ": " + strings.Join(d.Reasons, "; ")
}

// Decide is the approval policy: auto-approve when the request is within
// the team's quota, the template allows auto-approval, the approval rule (if
// any) allows it and the size is within the rule's limit, and the lease is
// within the template's maximum; otherwise a person decides. Every reason is
// kept, so the page can say exactly why. It runs inside the submitting
// transaction; the quota itself is enforced when that transaction commits.
func Decide(in PolicyInput) Decision {
	var ok, blockers []string
	if in.Quota.Limited() {
		ok = append(ok, "within team quota")
	}
	if in.Template.AutoApprove {
		ok = append(ok, "template allows auto-approval")
	} else {
		blockers = append(blockers, "template "+in.Template.Name+" requires approval")
	}
	if r := in.Rule; r != nil {
		if !r.AutoApprove {
			blockers = append(blockers, "the approval rule for "+r.Scope()+" requires approval")
		}
		if r.MaxSize != "" {
			limit, found := ResolveSize(in.Template, r.MaxSize)
			switch {
			case !found:
				blockers = append(blockers, fmt.Sprintf("the team's size limit %q is not a size of template %s", r.MaxSize, in.Template.Name))
			case SizeAtMost(in.Size, limit):
				ok = append(ok, fmt.Sprintf("size %s ≤ limit %s", in.Size.Name, r.MaxSize))
			default:
				blockers = append(blockers, fmt.Sprintf("size %s exceeds the team's auto-approve limit %s", in.Size.Name, r.MaxSize))
			}
		}
	}
	if in.Replicas > 0 {
		limit := in.Template.AutoApproveReplicas()
		if in.Replicas <= limit {
			ok = append(ok, fmt.Sprintf("pool of %d VMs ≤ auto-approve limit %d", in.Replicas, limit))
		} else {
			blockers = append(blockers, fmt.Sprintf("pool of %d VMs exceeds the auto-approve limit of %d for template %s",
				in.Replicas, limit, in.Template.Name))
		}
	}
	switch {
	case in.LeaseDays == 0:
		// Scaling a pool: its lease was decided when it was requested.
	case in.LeaseDays <= in.Template.MaxLeaseDays:
		ok = append(ok, fmt.Sprintf("lease %s ≤ maximum %d", nouns(in.LeaseDays, "day", "days"), in.Template.MaxLeaseDays))
	default:
		blockers = append(blockers, fmt.Sprintf("lease %s exceeds the template's maximum of %d", nouns(in.LeaseDays, "day", "days"), in.Template.MaxLeaseDays))
	}
	if len(blockers) > 0 {
		return Decision{Approve: false, Reasons: blockers}
	}
	return Decision{Approve: true, Reasons: ok}
}
