package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
)

func (b bundle) audit(t *testing.T, f store.AuditFilter) []store.AuditEntry {
	t.Helper()
	es, err := b.st.AuditLog(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if err := b.st.Audit(ctx, nil, store.UserActor(b.dev), "test", "thing:1", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit_log SET actor = 'someone else'`, `DELETE FROM audit_log`, `TRUNCATE audit_log`} {
		_, err := b.st.Pool().Exec(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
	es := b.audit(t, store.AuditFilter{Action: "test"})
	if len(es) != 1 || es[0].Actor != "developer" || es[0].ActorID == nil || *es[0].ActorID != b.dev.ID ||
		es[0].Target != "thing:1" || es[0].Details["k"] != "v" || time.Since(es[0].At) > time.Minute {
		t.Errorf("entry: %+v", es)
	}
}

func TestAuditIsWrittenWithTheChangeOrNotAtAll(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := b.audit(t, store.AuditFilter{Action: store.AuditRequestSubmit})
	if len(es) != 1 || es[0].Target != store.RequestTarget(r.ID) || es[0].Actor != "developer" || es[0].Details["name"] != "web-1" {
		t.Fatalf("submit audit: %+v", es)
	}
	// A refused submission changes nothing and audits nothing.
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = "Bad_Name" }); err == nil {
		t.Fatal("bad name accepted")
	}
	if n := len(b.audit(t, store.AuditFilter{Action: store.AuditRequestSubmit})); n != 1 {
		t.Errorf("%d submit entries after a refused submission", n)
	}
	// A VM action is audited; one refused for the state is not.
	if _, err := b.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "test", "", store.StateApproved); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RequestAction(ctx, r.ID, store.ActionStop, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RequestAction(ctx, r.ID, store.ActionStart, store.UserActor(b.dev)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("start while running: %v", err)
	}
	es = b.audit(t, store.AuditFilter{Action: store.AuditVMAction})
	if len(es) != 1 || es[0].Details["action"] != "stop" || es[0].Target != store.RequestTarget(r.ID) {
		t.Errorf("action audit: %+v", es)
	}
	// Filters and paging.
	all := b.audit(t, store.AuditFilter{Target: "request:"})
	if len(all) != 2 || all[0].ID < all[1].ID {
		t.Errorf("target filter, newest first: %+v", all)
	}
	if page := b.audit(t, store.AuditFilter{Target: "request:", Before: all[0].ID}); len(page) != 1 || page[0].ID != all[1].ID {
		t.Errorf("next page: %+v", page)
	}
	var ids []int64
	if err := b.st.EachAuditEntry(ctx, store.AuditFilter{Actor: "developer"}, func(e store.AuditEntry) error {
		ids = append(ids, e.ID)
		return nil
	}); err != nil || len(ids) != 2 || ids[0] > ids[1] {
		t.Errorf("export oldest first: %v %v", ids, err)
	}
}

func TestExternalUserSignInUpdatesRoleAndAuditsTheChange(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	x := store.ExternalUser{Issuer: "https://idp.example", Subject: "abc", Login: "alice", DisplayName: "Alice",
		Email: "alice@example.com", Role: store.RoleDeveloper, Team: "search"}
	u, err := b.st.UpsertExternalUser(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != store.RoleDeveloper || u.TeamName != "search" || u.Login != "alice" {
		t.Fatalf("created: %+v", u)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditUserCreate}); len(es) != 1 || es[0].Target != "user:alice" {
		t.Errorf("user_create: %+v", es)
	}
	if es := b.audit(t, store.AuditFilter{Action: "team_create"}); len(es) != 1 || es[0].Target != "team:search" {
		t.Errorf("team_create: %+v", es)
	}
	// Signing in again unchanged audits no role change.
	if _, err := b.st.UpsertExternalUser(ctx, x); err != nil {
		t.Fatal(err)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditRoleChange}); len(es) != 0 {
		t.Errorf("role change without a change: %+v", es)
	}
	// The provider moves her to the managers, under a new login: same user.
	x.Role, x.Team, x.Login = store.RoleManager, "", "alice2"
	u2, err := b.st.UpsertExternalUser(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if u2.ID != u.ID || u2.Role != store.RoleManager || u2.TeamID != nil || u2.Login != "alice2" {
		t.Errorf("updated: %+v", u2)
	}
	es := b.audit(t, store.AuditFilter{Action: store.AuditRoleChange})
	if len(es) != 1 || es[0].Details["fromRole"] != "developer" || es[0].Details["toRole"] != "manager" || es[0].Details["fromTeam"] != "search" {
		t.Errorf("role_change: %+v", es)
	}
	// Another identity may not take an existing login.
	_, err = b.st.UpsertExternalUser(ctx, store.ExternalUser{Issuer: "https://idp.example", Subject: "xyz", Login: "developer", Role: store.RoleDeveloper})
	if !errors.Is(err, store.ErrLoginTaken) {
		t.Errorf("login collision: %v", err)
	}
}

func TestSessionsEndEverywhere(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, k := range []string{"k1", "k2"} {
		if err := b.st.StartSession(ctx, b.dev, k, "dev", exp, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.st.StartSession(ctx, b.other, "k3", "dev", exp, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.st.StartSession(ctx, b.dev, "old", "dev", time.Now().Add(-time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if u, err := b.st.UserBySession(ctx, "k1"); err != nil || u.ID != b.dev.ID {
		t.Fatalf("k1: %v %v", u, err)
	}
	if _, err := b.st.UserBySession(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session: %v", err)
	}
	if ss, _ := b.st.Sessions(ctx, b.dev.ID); len(ss) != 2 {
		t.Errorf("%d live sessions, want 2", len(ss))
	}
	n, err := b.st.EndAllSessions(ctx, store.UserActor(b.dev), b.dev)
	if err != nil || n != 2 {
		t.Fatalf("end all: %d %v", n, err)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := b.st.UserBySession(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after sign-out everywhere: %v", k, err)
		}
	}
	if _, err := b.st.UserBySession(ctx, "k3"); err != nil {
		t.Errorf("someone else's session ended: %v", err)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditSignIn}); len(es) != 4 {
		t.Errorf("%d sign-ins audited, want 4", len(es))
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditSignOutAll}); len(es) != 1 {
		t.Errorf("sign-out everywhere audited %d times", len(es))
	}
}

func TestTokensAreHashedNamedExpiringAndRevocable(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	exp := time.Now().Add(24 * time.Hour)
	plain, err := b.st.CreateToken(ctx, b.dev.ID, "ci", &exp)
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE position($1::bytea in hash) > 0`, []byte(plain)).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("plaintext at rest: %d %v", stored, err)
	}
	if _, err := b.st.CreateToken(ctx, b.dev.ID, "  ", &exp); err == nil {
		t.Error("token without a name")
	}
	long := time.Now().Add(400 * 24 * time.Hour)
	if _, err := b.st.CreateToken(ctx, b.dev.ID, "forever", &long); err == nil {
		t.Error("token for 400 days")
	}
	past := time.Now().Add(-time.Minute)
	expired, err := b.st.CreateToken(ctx, b.dev.ID, "old", &past)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.UserByToken(ctx, expired); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired token: %v", err)
	}
	u, err := b.st.UserByToken(ctx, plain)
	if err != nil || u.ID != b.dev.ID {
		t.Fatalf("token owner: %v %v", u, err)
	}
	// The token acts with the owner's current role.
	if _, err := b.st.Pool().Exec(ctx, `UPDATE users SET role = 'platform' WHERE id = $1`, b.dev.ID); err != nil {
		t.Fatal(err)
	}
	if u, _ := b.st.UserByToken(ctx, plain); u.Role != store.RolePlatform {
		t.Errorf("token role %s after promotion", u.Role)
	}
	toks, err := b.st.Tokens(ctx, b.dev.ID)
	if err != nil || len(toks) != 2 || toks[0].Name != "old" || toks[1].LastUsedAt == nil {
		t.Fatalf("tokens: %+v %v", toks, err)
	}
	// Its use is recorded at most once a minute: a use within the minute
	// writes nothing; one after it records the time again.
	lastUsed := func() (at time.Time, xmin string) {
		t.Helper()
		if err := b.st.Pool().QueryRow(ctx, `SELECT last_used_at, xmin::text FROM api_tokens WHERE id = $1`, toks[1].ID).Scan(&at, &xmin); err != nil {
			t.Fatal(err)
		}
		return at, xmin
	}
	at0, x0 := lastUsed()
	if _, err := b.st.UserByToken(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if at, x := lastUsed(); !at.Equal(at0) || x != x0 {
		t.Errorf("a use within the minute wrote the token's row: last used %s (was %s), xmin %s (was %s)", at, at0, x, x0)
	}
	if _, err := b.st.Pool().Exec(ctx, `UPDATE api_tokens SET last_used_at = now() - interval '61 seconds' WHERE id = $1`, toks[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.UserByToken(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if at, _ := lastUsed(); time.Since(at) > 30*time.Second {
		t.Errorf("a use a minute after the last: last used %s ago", time.Since(at))
	}
	// Someone else cannot revoke it, nor learn that it exists.
	if err := b.st.RevokeToken(ctx, b.other, toks[1].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke someone else's token: %v", err)
	}
	if err := b.st.RevokeToken(ctx, b.dev, toks[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RevokeToken(ctx, b.dev, toks[1].ID); err != nil {
		t.Errorf("revoke twice: %v", err)
	}
	if _, err := b.st.UserByToken(ctx, plain); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked token: %v", err)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditTokenCreate}); len(es) != 2 || es[0].Details["name"] != "old" {
		t.Errorf("token_create: %+v", es)
	}
	es := b.audit(t, store.AuditFilter{Action: store.AuditTokenRevoke})
	if len(es) != 1 {
		t.Errorf("token_revoke: %+v", es)
	}
	for _, e := range b.audit(t, store.AuditFilter{}) {
		if strings.Contains(e.DetailsText(), plain) || strings.Contains(e.DetailsText(), expired) {
			t.Errorf("a token's secret is in the audit log: %s", e.DetailsText())
		}
	}
}
