package web

import (
	"net/url"
	"slices"
	"strconv"

	"paddock/internal/store"
)

// requestListForm is the VM list's filter, sort and page as asked for in
// the query string; values it does not know fall back to the defaults.
type requestListForm struct {
	State string
	Mine  bool
	// Sort is a key of store.RequestPageFilter.Sort; "" is created.
	Sort string
	Asc  bool
	Page int
}

// requestSortKeys are the columns the list sorts on.
var requestSortKeys = []string{"name", "state", "template", "team", "created"}

func requestListFormOf(q url.Values) requestListForm {
	f := requestListForm{Mine: q.Get("mine") == "1", Sort: q.Get("sort"), Asc: q.Get("dir") == "asc", Page: 1}
	if slices.Contains(historyStates, store.State(q.Get("state"))) {
		f.State = q.Get("state")
	}
	if !slices.Contains(requestSortKeys, f.Sort) || f.Sort == "created" {
		f.Sort = ""
	}
	if p, err := strconv.Atoi(q.Get("page")); err == nil && p > 1 && p <= 100000 {
		f.Page = p
	}
	return f
}

// url is the list with this filter, sorted on sort, at page.
func (f requestListForm) url(sort string, asc bool, page int) string {
	v := url.Values{}
	if f.State != "" {
		v.Set("state", f.State)
	}
	if f.Mine {
		v.Set("mine", "1")
	}
	if sort != "" && sort != "created" {
		v.Set("sort", sort)
	}
	if asc {
		v.Set("dir", "asc")
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/requests"
	}
	return "/requests?" + v.Encode()
}

// sortedOn reports whether the list is sorted on key ("created" is the
// default).
func (f requestListForm) sortedOn(key string) bool {
	return f.Sort == key || f.Sort == "" && key == "created"
}

// sortURL is the link of a column's header: sorted on it, ascending for
// words and newest first for time, or reversed when it is sorted on it
// already. It starts again from the first page.
func (f requestListForm) sortURL(key string) string {
	if f.sortedOn(key) {
		return f.url(key, !f.Asc, 1)
	}
	return f.url(key, key != "created", 1)
}

// ariaSort is the aria-sort of a column's header.
func (f requestListForm) ariaSort(key string) string {
	switch {
	case !f.sortedOn(key):
		return "none"
	case f.Asc:
		return "ascending"
	}
	return "descending"
}

// sortArrow shows the direction of the sorted column.
func (f requestListForm) sortArrow(key string) string {
	switch f.ariaSort(key) {
	case "ascending":
		return " ▲"
	case "descending":
		return " ▼"
	}
	return ""
}

// deprecatedNotes is the deprecation note of each template of the listed
// requests, once per template rather than once per row.
func deprecatedNotes(v requestsView) []string {
	var out []string
	for _, r := range v.Requests {
		n := newsOf(r, v.Templates[r.TemplateID])
		if note := n.Name + " is deprecated: " + n.Deprecated; n.Deprecated != "" && !slices.Contains(out, note) {
			out = append(out, note)
		}
	}
	return out
}

// requestsTotal says how many requests match: exactly up to the store's
// count cap, "more than" it beyond.
func requestsTotal(n int) string {
	if n > store.RequestCountCap {
		return "more than " + nouns(store.RequestCountCap, "request", "requests")
	}
	return nouns(n, "request", "requests")
}
