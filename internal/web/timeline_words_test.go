package web_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/web"
)

// TestTimelineSaysEachVerdictOnce decides a request from a real database and
// reads its timeline: the title names the verdict, the actor follows once
// ("Approved by manager", not "Approved by manager by manager"), and the
// reason below is what was said, without the verdict again.
func TestTimelineSaysEachVerdictOnce(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	r := e.grSubmit("developer", "centos-stream9", "medium", "asked")
	as, err := e.st.ApprovalsOf(t.Context(), r.ID)
	if err != nil || len(as) == 0 {
		t.Fatalf("approvals of the request: %v", err)
	}
	resp, _ := e.grPost(e.browser("manager"), "/approvals/"+strconv.FormatInt(as[0].ID, 10)+"/approve", url.Values{"comment": {"go ahead"}})
	if resp.StatusCode >= 400 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	_, b := e.grGet(e.browser("developer"), "/requests/"+strconv.FormatInt(r.ID, 10))
	i := strings.Index(b, `data-testid="timeline"`)
	if i < 0 {
		t.Fatal("the page has no timeline")
	}
	timeline := b[i:]
	timeline = timeline[:strings.Index(timeline, "</ol>")]
	for _, want := range []string{
		`<strong>Sent for approval</strong> <span class="muted">by policy</span></div><div>template centos-stream9 requires approval`,
		`<strong>Approved</strong> <span class="muted">by manager</span></div><div>go ahead</div>`,
	} {
		if !strings.Contains(timeline, want) {
			t.Errorf("the timeline lacks %s", want)
		}
	}
	for _, unwanted := range []string{"by manager</strong>", "needs approval:", "approved by manager: go ahead"} {
		if k := strings.Index(timeline, unwanted); k >= 0 {
			t.Errorf("the timeline says %q: %s", unwanted, timeline[max(0, k-300):])
		}
	}
}
