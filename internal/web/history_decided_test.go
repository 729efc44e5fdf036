package web_test

import (
	"context"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/web"
)

// TestHistoryShowsWhoDecidedAndWhy lists requests from a real database:
// one approved by the policy, one rejected by a manager with a comment, one
// still waiting; each row says who decided and why.
func TestHistoryShowsWhoDecidedAndWhy(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	auto := e.grSubmit("developer", "ubuntu-2404", "small", "auto")
	rejected := e.grSubmit("developer", "centos-stream9", "medium", "refused")
	waiting := e.grSubmit("developer", "centos-stream9", "medium", "waiting")
	as, err := e.st.ApprovalsOf(context.Background(), rejected.ID)
	if err != nil || len(as) == 0 {
		t.Fatalf("approvals of the request: %v", err)
	}
	mgr := e.browser("manager")
	resp, _ := e.grPost(mgr, "/approvals/"+strconv.FormatInt(as[0].ID, 10)+"/reject", url.Values{"comment": {"use the shared one"}})
	if resp.StatusCode >= 400 {
		t.Fatalf("reject: %d", resp.StatusCode)
	}
	_, b := e.grGet(mgr, "/history")
	row := func(id int64) string {
		return regexp.MustCompile(`(?s)data-testid="history-` + strconv.FormatInt(id, 10) + `">.*?</tr>`).FindString(b)
	}
	for _, c := range []struct {
		id        int64
		by, why   string
		undecided bool
	}{
		{auto.ID, `data-testid="decided-by">policy <span class="small muted">(approved)</span>`, "template allows auto-approval", false},
		{rejected.ID, `data-testid="decided-by">manager <span class="small muted">(rejected)</span>`, "use the shared one", false},
		{waiting.ID, `data-testid="decided-by"><span class="muted">not yet</span>`, "", true},
	} {
		r := row(c.id)
		if !strings.Contains(r, c.by) {
			t.Errorf("request %d: decided-by cell missing %s in %s", c.id, c.by, r)
		}
		if c.why != "" && !regexp.MustCompile(`data-testid="decision-reason">[^<]*`+regexp.QuoteMeta(c.why)).MatchString(r) {
			t.Errorf("request %d: the reason %q is not in its row: %s", c.id, c.why, r)
		}
		if c.undecided && strings.Contains(r, `data-testid="decision-reason"`) {
			t.Errorf("request %d is waiting but shows a reason", c.id)
		}
	}
	// The reason does not repeat the verdict and the decider beside it.
	if r := row(rejected.ID); !strings.Contains(r, `data-testid="decision-reason">use the shared one</td>`) {
		t.Errorf("the rejection's reason repeats its verdict or decider: %s", r)
	}
	if !strings.Contains(b, `<th scope="col">Decided by</th>`) || !strings.Contains(b, `<th scope="col">Reason</th>`) {
		t.Error("the history table lacks its Decided by and Reason columns")
	}
}
