package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"paddock/internal/store"
)

func TestDisableUserRevokesTokensAndEndsSessions(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	cli := store.Actor{Name: "cli"}
	exp := time.Now().Add(time.Hour)
	live, err := b.st.CreateToken(ctx, b.dev.ID, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.CreateToken(ctx, b.dev.ID, "laptop", nil); err != nil {
		t.Fatal(err)
	}
	other, err := b.st.CreateToken(ctx, b.other.ID, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2"} {
		if err := b.st.StartSession(ctx, b.dev, k, "dev", exp, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.st.StartSession(ctx, b.other, "k3", "dev", exp, nil); err != nil {
		t.Fatal(err)
	}

	off, err := b.st.DisableUser(ctx, cli, "developer", "ticket 42")
	if err != nil || off != (store.Offboarding{TokensRevoked: 2, SessionsEnded: 2}) {
		t.Fatalf("disable: %+v %v", off, err)
	}
	if _, err := b.st.UserByToken(ctx, live); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of a disabled user: %v", err)
	}
	if _, err := b.st.UserBySession(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session of a disabled user: %v", err)
	}
	if err := b.st.StartSession(ctx, b.dev, "k4", "dev", exp, nil); !errors.Is(err, store.ErrUserDisabled) {
		t.Errorf("new session for a disabled user: %v", err)
	}
	if _, err := b.st.CreateTokenBy(ctx, cli, b.dev.ID, "new", nil); !errors.Is(err, store.ErrUserDisabled) {
		t.Errorf("new token for a disabled user: %v", err)
	}
	if u, _ := b.st.UserByLogin(ctx, "developer"); !u.Disabled {
		t.Error("the user does not say it is disabled")
	}
	// Nobody else is touched.
	if _, err := b.st.UserByToken(ctx, other); err != nil {
		t.Errorf("someone else's token: %v", err)
	}
	if _, err := b.st.UserBySession(ctx, "k3"); err != nil {
		t.Errorf("someone else's session: %v", err)
	}
	es := b.audit(t, store.AuditFilter{Action: store.AuditUserDisable})
	if len(es) != 1 || es[0].Actor != "cli" || es[0].Target != "user:developer" || es[0].Details["by"] != "administrator" ||
		es[0].Details["reason"] != "ticket 42" || es[0].Details["tokensRevoked"] != float64(2) {
		t.Errorf("user_disable audit: %+v", es)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditTokenRevoke}); len(es) != 2 {
		t.Errorf("%d token revocations audited", len(es))
	}

	// Again: nothing to do, nothing audited.
	if off, err := b.st.DisableUser(ctx, cli, "developer", ""); err != nil || !off.AlreadyDisabled {
		t.Errorf("disable twice: %+v %v", off, err)
	}
	if n := len(b.audit(t, store.AuditFilter{Action: store.AuditUserDisable})); n != 1 {
		t.Errorf("disabling twice audited %d times", n)
	}
	if _, err := b.st.DisableUser(ctx, cli, "nobody", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown login: %v", err)
	}

	// Enabled: sessions may start again; revoked tokens stay revoked.
	if changed, err := b.st.EnableUser(ctx, cli, "developer"); err != nil || !changed {
		t.Fatalf("enable: %v %v", changed, err)
	}
	if err := b.st.StartSession(ctx, b.dev, "k5", "dev", exp, nil); err != nil {
		t.Errorf("session after enable: %v", err)
	}
	if _, err := b.st.UserByToken(ctx, live); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a revoked token came back: %v", err)
	}
	if changed, err := b.st.EnableUser(ctx, cli, "developer"); err != nil || changed {
		t.Errorf("enable twice: %v %v", changed, err)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditUserEnable}); len(es) != 1 || es[0].Details["wasDisabledBy"] != "administrator" {
		t.Errorf("user_enable audit: %+v", es)
	}
}

// TestDisabledUserHasNoSessionEvenIfItsRowSurvives: the disabled mark alone
// signs the user out, whatever happens to the session rows.
func TestDisabledUserHasNoSessionEvenIfItsRowSurvives(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if err := b.st.StartSession(ctx, b.dev, "k1", "dev", time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	tok, err := b.st.CreateToken(ctx, b.dev.ID, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Pool().Exec(ctx, `UPDATE users SET disabled_at = now(), disabled_by = 'administrator' WHERE id = $1`, b.dev.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.UserBySession(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session: %v", err)
	}
	if _, err := b.st.UserByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token: %v", err)
	}
}

// TestIdentityProviderRefusalDisablesUntilItAdmitsAgain: a refusal by the
// groups disables the account and a later admission re-enables it; an
// administrator's disabling is kept through both.
func TestIdentityProviderRefusalDisablesUntilItAdmitsAgain(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	x := store.ExternalUser{Issuer: "https://idp.example", Subject: "abc", Login: "alice", DisplayName: "Alice", Role: store.RolePlatform}
	u, err := b.st.UpsertExternalUser(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := b.st.CreateToken(ctx, u.ID, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.RefuseExternalUser(ctx, x, map[string]any{"via": "oidc"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.UserByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token after refusal: %v", err)
	}
	es := b.audit(t, store.AuditFilter{Action: store.AuditUserDisable})
	if len(es) != 1 || es[0].Details["by"] != "identity_provider" || es[0].ActorID == nil || *es[0].ActorID != u.ID {
		t.Errorf("user_disable: %+v", es)
	}
	// Refused again: already disabled, only the refusal is audited.
	if err := b.st.RefuseExternalUser(ctx, x, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(b.audit(t, store.AuditFilter{Action: store.AuditSignInRefused})); n != 2 {
		t.Errorf("%d refusals audited", n)
	}
	if n := len(b.audit(t, store.AuditFilter{Action: store.AuditUserDisable})); n != 1 {
		t.Errorf("%d disablings audited", n)
	}
	x.Role = store.RoleDeveloper
	if u, err := b.st.UpsertExternalUser(ctx, x); err != nil || u.Disabled || u.Role != store.RoleDeveloper {
		t.Fatalf("admitted again: %+v %v", u, err)
	}
	if es := b.audit(t, store.AuditFilter{Action: store.AuditUserEnable}); len(es) != 1 || es[0].Details["wasDisabledBy"] != "identity_provider" {
		t.Errorf("user_enable: %+v", es)
	}

	// An administrator's disabling survives both a refusal and an admission.
	if _, err := b.st.DisableUser(ctx, store.Actor{Name: "cli"}, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RefuseExternalUser(ctx, x, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.UpsertExternalUser(ctx, x); !errors.Is(err, store.ErrUserDisabled) {
		t.Errorf("sign-in of an account an administrator disabled: %v", err)
	}
	var by string
	if err := b.st.Pool().QueryRow(ctx, `SELECT disabled_by FROM users WHERE id = $1`, u.ID).Scan(&by); err != nil || by != "administrator" {
		t.Errorf("disabled by %q %v", by, err)
	}
	// An administrator takes over an account the identity provider disabled.
	y := store.ExternalUser{Issuer: "https://idp.example", Subject: "def", Login: "bob", DisplayName: "Bob", Role: store.RoleDeveloper}
	if _, err := b.st.UpsertExternalUser(ctx, y); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RefuseExternalUser(ctx, y, nil); err != nil {
		t.Fatal(err)
	}
	if off, err := b.st.DisableUser(ctx, store.Actor{Name: "cli"}, "bob", ""); err != nil || off.AlreadyDisabled {
		t.Fatalf("administrator over the identity provider: %+v %v", off, err)
	}
	if _, err := b.st.UpsertExternalUser(ctx, y); !errors.Is(err, store.ErrUserDisabled) {
		t.Errorf("admission after the administrator took over: %v", err)
	}
}
