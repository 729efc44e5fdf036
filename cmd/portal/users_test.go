package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// usersCLI runs `portal ARGS` in-process against dbURL.
func usersCLI(dbURL string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": dbURL}
	err = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestUsersDisableOffboards: `portal users disable` revokes the person's
// tokens and ends their sessions at once, audited as coming from the
// command line; `portal users enable` lets them sign in again.
func TestUsersDisableOffboards(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	ctx := context.Background()
	st := testStore(t, dbURL)
	alice, err := st.EnsureUser(ctx, "alice", "Alice", store.RolePlatform, nil)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := st.EnsureUser(ctx, "bob", "Bob", store.RoleDeveloper, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.CreateToken(ctx, alice.ID, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := st.CreateToken(ctx, bob.ID, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	if err := st.StartSession(ctx, alice, "alice-laptop", "oidc", exp, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.StartSession(ctx, bob, "bob-laptop", "oidc", exp, nil); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := usersCLI(dbURL, "users", "disable", "--user", "alice", "--reason", "left the company")
	if err != nil || !strings.Contains(out, "disabled alice; 1 API tokens revoked, 1 web sessions ended") {
		t.Fatalf("disable: %v\n%s%s", err, out, errOut)
	}
	if _, err := st.UserByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice's token after disable: %v", err)
	}
	if _, err := st.UserBySession(ctx, "alice-laptop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice's session after disable: %v", err)
	}
	if _, err := st.UserByToken(ctx, bobTok); err != nil {
		t.Errorf("bob's token: %v", err)
	}
	if _, err := st.UserBySession(ctx, "bob-laptop"); err != nil {
		t.Errorf("bob's session: %v", err)
	}
	es, err := st.AuditLog(ctx, store.AuditFilter{Target: "user:alice", Action: "user_disable"})
	if err != nil || len(es) != 1 || es[0].Actor != "cli" || es[0].ActorID != nil || es[0].Details["reason"] != "left the company" {
		t.Errorf("audit: %+v %v", es, err)
	}
	if _, _, err := usersCLI(dbURL, "token", "create", "--user", "alice"); err == nil {
		t.Error("a token was made for a disabled user")
	}
	if out, _, err := usersCLI(dbURL, "users", "disable", "--user", "alice"); err != nil || !strings.Contains(out, "alice was already disabled") {
		t.Errorf("disable twice: %v %s", err, out)
	}

	if out, _, err := usersCLI(dbURL, "users", "enable", "--user", "alice"); err != nil || !strings.Contains(out, "enabled alice") {
		t.Fatalf("enable: %v %s", err, out)
	}
	if err := st.StartSession(ctx, alice, "alice-phone", "oidc", exp, nil); err != nil {
		t.Errorf("sign-in after enable: %v", err)
	}
	if _, err := st.UserByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked token came back: %v", err)
	}
	es, err = st.AuditLog(ctx, store.AuditFilter{Target: "user:alice", Action: "user_enable"})
	if err != nil || len(es) != 1 || es[0].Actor != "cli" {
		t.Errorf("enable audit: %+v %v", es, err)
	}

	for _, args := range [][]string{{"users"}, {"users", "delete", "--user", "alice"}, {"users", "disable"}} {
		if _, _, err := usersCLI(dbURL, args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, _, err := usersCLI(dbURL, "users", "disable", "--user", "nobody"); err == nil || !strings.Contains(err.Error(), `no user with login "nobody"`) {
		t.Errorf("unknown user: %v", err)
	}
}
