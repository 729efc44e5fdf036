package web_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"paddock/internal/web"
)

// TestApprovalQueueNoticesChangesLive polls the queue's live fragment as
// htmx does, against a real database: nothing changed is a 204 (nothing is
// swapped or announced again); a new request waiting is said with a link,
// and the navigation's count comes along out of band.
func TestApprovalQueueNoticesChangesLive(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	first := e.grSubmit("developer", "centos-stream9", "medium", "first")
	mgr := e.browser("manager")
	_, b := e.grGet(mgr, "/approvals")
	m := regexp.MustCompile(`hx-get="(/approvals/live\?[^"]+)" hx-trigger="every 5s"`).FindStringSubmatch(b)
	if m == nil {
		t.Fatal("the queue does not poll for changes")
	}
	live := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(b, `data-testid="approvals-count">1<`) {
		t.Error("the navigation does not count the one waiting")
	}
	resp, err := mgr.Get(e.url + live)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("an unchanged queue: %d, want 204", resp.StatusCode)
	}

	e.grSubmit("developer", "centos-stream9", "medium", "second")
	status, b := e.grGet(mgr, live)
	if status != http.StatusOK || !strings.Contains(b, `data-testid="queue-changed">1 new approval is waiting.`) ||
		!strings.Contains(b, `<a href="/approvals">Show the current queue</a>`) {
		t.Errorf("a new approval: %d %s", status, b)
	}
	if !strings.Contains(b, `id="nav-waiting" hx-swap-oob="true"`) || !strings.Contains(b, `data-testid="approvals-count">2<`) {
		t.Errorf("the navigation's count is not sent along: %s", b)
	}
	// The next poll carries what is shown: unchanged again, 204.
	next := strings.ReplaceAll(regexp.MustCompile(`hx-get="([^"]+)"`).FindStringSubmatch(b)[1], "&amp;", "&")
	if resp, _ := mgr.Get(e.url + next); resp.StatusCode != http.StatusNoContent {
		t.Errorf("the same change polled again: %d, want 204", resp.StatusCode)
	}

	// The request drawn on the page is withdrawn: said too.
	if _, err := e.st.Pool().Exec(context.Background(), `UPDATE approvals SET verdict = 'withdrawn', decided_at = now() WHERE request_id = $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, b := e.grGet(mgr, next); !strings.Contains(b, "1 approval on this page was decided or withdrawn meanwhile") {
		t.Errorf("a withdrawn approval is not noticed: %s", b)
	}
}
