package main

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// rulesCLI runs `portal approval-rules ARGS` in-process against dbURL.
func rulesCLI(t *testing.T, dbURL string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": dbURL}
	err = run(context.Background(), append([]string{"approval-rules"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestApprovalRulesAsCode: the dev seed applies the example rules and a
// quota; export → apply changes nothing; --prune makes a file the whole
// policy; a bad file applies nothing and names the rule and field.
func TestApprovalRulesAsCode(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	if err := seed(ctx, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	team, _ := st.EnsureTeam(ctx, "payments", "payments")
	if q, _ := st.TeamQuota(ctx, team.ID); q.VMs == nil || *q.VMs != 10 {
		t.Errorf("seeded quota = %+v", q)
	}
	out, _, err := rulesCLI(t, dbURL, "export")
	if err != nil || !strings.Contains(out, "team: payments") || !strings.Contains(out, "maxSize: medium") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	dir := t.TempDir()
	exported := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(exported, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := rulesCLI(t, dbURL, "apply", "-f", exported); err != nil || out != "team payments, every template: unchanged\n" {
		t.Errorf("apply of an export: %v %q", err, out)
	}
	policy := filepath.Join(dir, "policy.yaml")
	_ = os.WriteFile(policy, []byte("rules:\n  - maxSize: small\n"), 0o644)
	out, _, err = rulesCLI(t, dbURL, "apply", "-f", policy, "--prune", "--dry-run")
	if err != nil || out != "every team, every template: would be created\nteam payments, every template: would be deleted\n" {
		t.Errorf("dry run: %v %q", err, out)
	}
	if _, _, err := rulesCLI(t, dbURL, "apply", "-f", policy, "--prune"); err != nil {
		t.Fatal(err)
	}
	rules, _ := st.ApprovalRules(ctx)
	if len(rules) != 1 || rules[0].Scope() != "every team, every template" {
		t.Errorf("after --prune: %+v", rules)
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("rules:\n  - team: ghosts\n    maxSize: small\n"), 0o644)
	_, errOut, err := rulesCLI(t, dbURL, "apply", "-f", bad)
	if err == nil || !strings.Contains(errOut, `rules[0].team: no team named "ghosts"`) {
		t.Errorf("bad file: %v\n%s", err, errOut)
	}
	// Seeding again leaves the platform team's quota alone.
	q := store.Quota{TeamID: team.ID, VMs: ptr(3)}
	if err := st.SetTeamQuota(ctx, q, store.Actor{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := seed(ctx, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.TeamQuota(ctx, team.ID); got.VMs == nil || *got.VMs != 3 {
		t.Errorf("a second seed changed the quota: %+v", got)
	}
}

func ptr(n int) *int { return &n }

func TestGuardrailsConfig(t *testing.T) {
	t.Parallel()
	var g guardrailsConfig
	env := map[string]string{"PADDOCK_WEBHOOK_URLS": "https://hooks.example/a, https://hooks.example/b", "PADDOCK_LEASE_GRACE": "24h"}
	fs := newFlagSet()
	guardrailsFlags(fs, &g, func(k string) string { return env[k] })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if len(g.WebhookURLs) != 2 || g.LeaseGrace != 24*time.Hour || g.LeaseSweep != time.Minute {
		t.Errorf("config = %+v", g)
	}
	if err := g.check(); err != nil {
		t.Error(err)
	}
	g.WebhookURLs = []string{"ftp://secret@example/x"}
	if err := g.check(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v", err)
	}
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }
