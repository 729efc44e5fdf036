package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"paddock/internal/store"
)

// catalogAt reads the catalog version as a page does (with its session)
// and returns a context carrying it.
func catalogAt(t *testing.T, st *store.Store) (context.Context, int64) {
	t.Helper()
	ps, err := st.LoadPageSession(context.Background(), "no-such-session")
	if err != nil {
		t.Fatal(err)
	}
	if ps.Found || ps.User != nil {
		t.Fatalf("a session that does not exist was found: %+v", ps)
	}
	return store.WithCatalogVersion(context.Background(), ps.CatalogVersion), ps.CatalogVersion
}

// lists reads every cached list under ctx and says what it saw, in words.
func lists(t *testing.T, ctx context.Context, st *store.Store) (templates, names, states, teams []string) {
	t.Helper()
	ts, err := st.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range ts {
		templates = append(templates, tp.Name+":"+tp.Spec.DisplayName)
	}
	ns, err := st.TemplateNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		names = append(names, n.Name)
	}
	ss, err := st.TemplateStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Deprecated {
			states = append(states, s.Name+":deprecated")
		} else {
			states = append(states, s.Name)
		}
	}
	slices.Sort(states)
	tms, err := st.Teams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range tms {
		teams = append(teams, tm.Name)
	}
	return templates, names, states, teams
}

// The lists pages show are kept in memory by catalog version: a page that
// read version n gets the lists as they were at n without asking the
// database, and any change to templates or teams, by this store, by hand
// or by another replica, moves the version, so the next page reads them
// again. Submitting requests, which changes a team's usage, does not.
func TestCatalogListsAreCachedByVersionAndEveryChangeMovesIt(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	c0, v0 := catalogAt(t, b.st)
	tpl, names, states, teams := lists(t, c0, b.st)
	if !slices.Equal(names, []string{"gated", "ubuntu"}) || len(tpl) != 2 || !slices.Equal(states, []string{"gated", "ubuntu"}) || !slices.Equal(teams, []string{"payments"}) {
		t.Fatalf("lists at version %d: %v %v %v %v", v0, tpl, names, states, teams)
	}

	// What a caller does to the lists it got stays with it.
	ts, _ := b.st.Templates(c0)
	ts[0].Name, ts[0].Spec.Tags = "changed", append(ts[0].Spec.Tags, "x")
	tms, _ := b.st.Teams(c0)
	tms[0].Name = "changed"
	if tpl2, _, _, teams2 := lists(t, c0, b.st); !slices.Equal(tpl2, tpl) || !slices.Equal(teams2, teams) {
		t.Fatalf("a caller's change reached the cache: %v %v", tpl2, teams2)
	}

	// Requests do not move the version: the quota's usage rows are not
	// in the catalog.
	if _, err := b.submit(t, nil); err != nil {
		t.Fatal(err)
	}
	if _, v := catalogAt(t, b.st); v != v0 {
		t.Fatalf("a submit moved the catalog version from %d to %d", v0, v)
	}

	// Changes by hand, as another replica or an operator would make them:
	// a page that read the old version still gets the lists of that
	// version, from memory (the database no longer holds them, so they
	// can come from nowhere else); a page after the change gets the new.
	for _, q := range []string{
		`UPDATE templates SET deprecated_at = now(), deprecation_note = 'old' WHERE name = 'gated'`,
		`INSERT INTO teams (name, namespace) VALUES ('search', 'search')`,
	} {
		if _, err := b.st.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if tpl2, names2, states2, teams2 := lists(t, c0, b.st); !slices.Equal(tpl2, tpl) || !slices.Equal(names2, names) || !slices.Equal(states2, states) || !slices.Equal(teams2, teams) {
		t.Fatalf("at version %d the lists were not the cached ones: %v %v %v %v", v0, tpl2, names2, states2, teams2)
	}
	c1, v1 := catalogAt(t, b.st)
	if v1 == v0 {
		t.Fatal("changes to templates and teams did not move the catalog version")
	}
	_, names, states, teams = lists(t, c1, b.st)
	if !slices.Equal(states, []string{"gated:deprecated", "ubuntu"}) || !slices.Equal(teams, []string{"payments", "search"}) || !slices.Equal(names, []string{"gated", "ubuntu"}) {
		t.Fatalf("lists at version %d: %v %v %v", v1, names, states, teams)
	}

	// The store's own writes move it too: a new template, and a new
	// version of one (whose display name the catalog shows).
	spec := testTemplate("fedora", true)
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	spec = testTemplate("ubuntu", true)
	spec.DisplayName = "Ubuntu 24.04"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	c2, _ := catalogAt(t, b.st)
	tpl, names, _, _ = lists(t, c2, b.st)
	if !slices.Equal(names, []string{"fedora", "gated", "ubuntu"}) || !slices.Contains(tpl, "ubuntu:Ubuntu 24.04") {
		t.Fatalf("after publishing: %v %v", names, tpl)
	}

	// Without a version in the context (the API, background work) every
	// read goes to the database.
	if _, err := b.st.Pool().Exec(ctx, `UPDATE templates SET deprecated_at = NULL, deprecation_note = '' WHERE name = 'gated'`); err != nil {
		t.Fatal(err)
	}
	if _, _, states, _ := lists(t, ctx, b.st); !slices.Equal(states, []string{"fedora", "gated", "ubuntu"}) {
		t.Fatalf("without a version: %v", states)
	}
}

// A page's session, its user and the catalog version come in one query,
// with the same rules as UserBySession: an expired mapping, a disabled user
// or a session ended everywhere has no user.
func TestLoadPageSessionReadsSessionUserAndVersion(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if _, err := b.st.Pool().Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('k1', 'data', $1), ('gone', 'old', now() - interval '1 second')`, exp); err != nil {
		t.Fatal(err)
	}
	if err := b.st.StartSession(ctx, b.dev, "k1", "dev", exp, nil); err != nil {
		t.Fatal(err)
	}
	ps, err := b.st.LoadPageSession(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.st.UserBySession(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Found || string(ps.Data) != "data" || ps.User == nil || !reflect.DeepEqual(*ps.User, want) {
		t.Fatalf("k1: %+v (user %+v), want the user %+v", ps, ps.User, want)
	}
	if want.TeamName != "payments" || want.TeamID == nil {
		t.Fatalf("user without a team: %+v", want)
	}
	if ps.ApprovalsWaiting != nil {
		t.Errorf("a developer's session counts approvals: %d", *ps.ApprovalsWaiting)
	}
	// A manager's session brings the navigation's count, as
	// ApprovalsWaitingFor counts it.
	if _, err := b.st.Pool().Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('m1', 'data', $1)`, exp); err != nil {
		t.Fatal(err)
	}
	if err := b.st.StartSession(ctx, b.other, "m1", "dev", exp, nil); err != nil {
		t.Fatal(err)
	}
	waiting := func() int {
		t.Helper()
		ps, err := b.st.LoadPageSession(ctx, "m1")
		if err != nil || ps.User == nil || ps.User.ID != b.other.ID || ps.ApprovalsWaiting == nil {
			t.Fatalf("manager's session: %+v %v", ps, err)
		}
		n, err := b.st.ApprovalsWaitingFor(ctx, b.other.ID)
		if err != nil || n != *ps.ApprovalsWaiting {
			t.Fatalf("the session counts %d approvals waiting, ApprovalsWaitingFor %d (%v)", *ps.ApprovalsWaiting, n, err)
		}
		return n
	}
	before := waiting()
	for i := range 2 {
		if _, err := b.submit(t, func(n *store.NewRequest) { n.Template, n.Name = "gated", fmt.Sprintf("gated-%d", i) }); err != nil {
			t.Fatal(err)
		}
	}
	if n := waiting(); n != before+2 {
		t.Errorf("after two requests that need approval: %d waiting, want %d", n, before+2)
	}
	if ps, err := b.st.LoadPageSession(ctx, "gone"); err != nil || ps.Found || ps.User != nil {
		t.Fatalf("expired session: %+v %v", ps, err)
	}
	if _, err := b.st.EndAllSessions(ctx, store.UserActor(b.dev), b.dev); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Pool().Exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES ('k1', 'data', $1)`, exp); err != nil {
		t.Fatal(err)
	}
	if ps, err := b.st.LoadPageSession(ctx, "k1"); err != nil || !ps.Found || ps.User != nil {
		t.Fatalf("session written back after sign-out everywhere: %+v %v", ps, err)
	}
	if err := b.st.StartSession(ctx, b.dev, "k1", "dev", exp, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.DisableUser(ctx, store.UserActor(b.other), b.dev.Login, "left the company"); err != nil {
		t.Fatal(err)
	}
	if ps, err := b.st.LoadPageSession(ctx, "k1"); err != nil || ps.User != nil {
		t.Fatalf("disabled user: %+v %v", ps, err)
	}
}
