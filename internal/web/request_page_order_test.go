package web_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// TestVMPageNoticesFirstAndNoRebuildToTheFailedVersion renders a VM's page
// from a real database: the template's deprecation and version news open
// the page, above the status; a VM that failed on v1 is offered v2 only.
func TestVMPageNoticesFirstAndNoRebuildToTheFailedVersion(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	r := e.cattleRunning("fragile")
	e.cattleV2()
	e.grSubmit("developer", "ubuntu-2404", "small", "second")
	if err := e.st.DeprecateTemplate(ctx, "ubuntu-2404", "Use debian-12 instead", store.Actor{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	c := e.browser("developer")
	page := "/requests/" + strconv.FormatInt(r.ID, 10)
	_, b := e.grGet(c, page)
	notice, status := strings.Index(b, `data-testid="template-notice"`), strings.Index(b, `data-testid="status-panel"`)
	if notice < 0 || notice > status {
		t.Errorf("the template notice is at %d, the status at %d: the notice must come first", notice, status)
	}
	if !strings.Contains(b, "ubuntu-2404 is deprecated: Use debian-12 instead") || strings.Count(b, `data-testid="template-deprecation-note"`) != 1 {
		t.Error("the deprecation note is missing or repeated")
	}
	// Running on v1: both versions are offered, v2 first.
	opts := func(b string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<option value="(\d+)"`).FindAllStringSubmatch(regexp.MustCompile(`(?s)<select id="rebuild-version".*?</select>`).FindString(b), -1) {
			out = append(out, m[1])
		}
		return out
	}
	if got := strings.Join(opts(b), ","); got != "2,1" {
		t.Errorf("a running VM on v1 is offered %q, want 2,1", got)
	}
	if _, err := e.st.Transition(ctx, r.ID, store.StateFailed, store.ActorCluster, "state", "the image would not boot", store.StateRunning); err != nil {
		t.Fatal(err)
	}
	_, b = e.grGet(c, page)
	if got := strings.Join(opts(b), ","); got != "2" {
		t.Errorf("a VM that failed on v1 is offered %q, want only 2", got)
	}
	if !regexp.MustCompile(`<option value="2" selected>`).MatchString(b) {
		t.Error("v2 is not chosen for the failed VM")
	}
	// The VM list names the deprecation once, above the table, not per row.
	_, b = e.grGet(c, "/requests")
	if n := strings.Count(b, `data-testid="template-deprecation-note"`); n != 1 {
		t.Errorf("the list shows the deprecation note %d times, want once", n)
	}
}
