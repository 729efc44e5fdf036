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

// Decide is the basic approval policy: auto-approve when the template allows
// it and the lease is within the template's maximum. It runs inside the
// submitting transaction, with the team row locked, so that quota rules can
// join it without races.
func Decide(in PolicyInput) Decision {
	var ok, blockers []string
	if in.Template.AutoApprove {
		ok = append(ok, "template allows auto-approval")
	} else {
		blockers = append(blockers, "template "+in.Template.Name+" requires approval")
	}
	if in.LeaseDays <= in.Template.MaxLeaseDays {
		ok = append(ok, fmt.Sprintf("lease %d days ≤ maximum %d", in.LeaseDays, in.Template.MaxLeaseDays))
	} else {
		blockers = append(blockers, fmt.Sprintf("lease %d days exceeds the template's maximum of %d", in.LeaseDays, in.Template.MaxLeaseDays))
	}
	if len(blockers) > 0 {
		return Decision{Approve: false, Reasons: blockers}
	}
	return Decision{Approve: true, Reasons: ok}
}
