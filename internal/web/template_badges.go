package web

import (
	"fmt"

	"paddock/internal/store"
)

// templateNews is what the owner of a VM should know about its template
// now: that a newer version exists, or that the template is deprecated.
type templateNews struct {
	// Outdated reads "template v3 is outdated — v5 is current", or "".
	Outdated string
	// Deprecated holds the platform team's note, or "".
	Deprecated string
	Name       string
}

// newsOf compares a request's pinned version with its template's state.
// Requests whose VM is gone (or never came) get no news.
func newsOf(r store.Request, t store.TemplateState) templateNews {
	n := templateNews{Name: r.TemplateName}
	if r.State.Terminal() || t.Current == 0 {
		return n
	}
	if r.TemplateVersion < t.Current && !t.Retired {
		n.Outdated = fmt.Sprintf("template v%d is outdated — v%d is current", r.TemplateVersion, t.Current)
	}
	if t.Deprecated {
		n.Deprecated = t.DeprecationNote
		if n.Deprecated == "" {
			n.Deprecated = "no new VMs can be made from it"
		}
	}
	return n
}
