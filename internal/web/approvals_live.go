package web

import (
	"github.com/a-h/templ"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// queueLive is what the approvals page knows of the queue: the approvals it
// drew, and how the queue differs now.
type queueLive struct {
	// URL asks for the next change; it carries the approvals drawn and the
	// state already shown, so that an unchanged queue costs a 204.
	URL string
	// New is how many approvals have come since the page was drawn, Gone
	// how many of those drawn were decided or withdrawn meanwhile.
	New, Gone int
	// Waiting is the count for the navigation.
	Waiting int
	Text    string
}

func queueLiveOf(seen, now []int64, waiting int) queueLive {
	l := queueLive{Waiting: waiting}
	for _, id := range now {
		if !slices.Contains(seen, id) {
			l.New++
		}
	}
	for _, id := range seen {
		if !slices.Contains(now, id) {
			l.Gone++
		}
	}
	var parts []string
	if l.New > 0 {
		parts = append(parts, nouns(l.New, "new approval is", "new approvals are")+" waiting")
	}
	if l.Gone > 0 {
		parts = append(parts, nouns(l.Gone, "approval on this page was", "approvals on this page were")+" decided or withdrawn meanwhile")
	}
	if len(parts) > 0 {
		l.Text = strings.Join(parts, "; ") + "."
	}
	ids := make([]string, len(seen))
	for i, id := range seen {
		ids[i] = strconv.FormatInt(id, 10)
	}
	l.URL = "/approvals/live?" + url.Values{"seen": {strings.Join(ids, ",")}, "shown": {l.state()}}.Encode()
	return l
}

// state sums up what the notice shows, to tell whether it has changed.
func (l queueLive) state() string {
	return strconv.Itoa(l.New) + "-" + strconv.Itoa(l.Gone) + "-" + strconv.Itoa(l.Waiting)
}

// approvalsLive answers the approvals page's poll: 204 while nothing has
// changed (htmx keeps the page as it is, and nothing is announced again),
// else the notice of what has and the navigation's count.
func (s *Server) approvalsLive(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	var seen []int64
	for _, f := range strings.Split(r.URL.Query().Get("seen"), ",") {
		if id, err := strconv.ParseInt(f, 10, 64); err == nil {
			seen = append(seen, id)
		}
	}
	q, err := s.store.ApprovalQueue(r.Context())
	if err != nil {
		return err
	}
	now := make([]int64, len(q))
	for i, a := range q {
		now[i] = a.ID
	}
	waiting, err := s.store.ApprovalsWaitingFor(r.Context(), u.ID)
	if err != nil {
		return err
	}
	l := queueLiveOf(seen, now, waiting)
	w.Header().Set("Cache-Control", "no-store")
	if l.state() == r.URL.Query().Get("shown") {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return render(w, r, http.StatusOK, approvalsLiveFragment(l))
}

// oobAttrs marks an element to be swapped out of band by htmx, when oob.
func oobAttrs(oob bool) templ.Attributes {
	if oob {
		return templ.Attributes{"hx-swap-oob": "true"}
	}
	return templ.Attributes{}
}
