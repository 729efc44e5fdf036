package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/templates"
)

// guardrailsConfig configures leases and outbound webhooks.
type guardrailsConfig struct {
	// LeaseGrace is how long an expired VM stays stopped before it is deleted.
	LeaseGrace time.Duration
	// LeaseSweep is how often the lease keeper runs.
	LeaseSweep time.Duration
	// WebhookURLs receive every notification; WebhookSecret signs them.
	WebhookURLs   []string
	WebhookSecret string
	// BaseURL is where people reach Paddock, for links in notifications.
	BaseURL string
}

// guardrailsFlags registers the lease and webhook settings. The webhook
// secret (and the URLs, which for Slack are secrets too) come only from the
// environment, never from flags that `ps` shows.
func guardrailsFlags(fs *flag.FlagSet, g *guardrailsConfig, getenv func(string) string) {
	fs.DurationVar(&g.LeaseGrace, "lease-grace", envDuration(getenv, "PADDOCK_LEASE_GRACE", store.DefaultLeaseGrace),
		"how long an expired VM stays stopped before it is deleted (PADDOCK_LEASE_GRACE)")
	fs.DurationVar(&g.LeaseSweep, "lease-sweep", envDuration(getenv, "PADDOCK_LEASE_SWEEP", time.Minute),
		"how often lease reminders, expiry and deletion are checked (PADDOCK_LEASE_SWEEP)")
	fs.StringVar(&g.BaseURL, "base-url", getenv("PADDOCK_BASE_URL"), "Paddock's public URL, for links in notifications (PADDOCK_BASE_URL)")
	g.WebhookURLs = strings.FieldsFunc(getenv("PADDOCK_WEBHOOK_URLS")+","+getenv("PADDOCK_WEBHOOK_URL"), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n'
	})
	g.WebhookSecret = getenv("PADDOCK_WEBHOOK_SECRET")
}

// check reports settings that cannot work.
func (g guardrailsConfig) check() error {
	for _, u := range g.WebhookURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("PADDOCK_WEBHOOK_URLS: %q is not an http(s) URL", provision.Endpoint(u))
		}
	}
	if g.LeaseSweep < time.Second {
		return fmt.Errorf("--lease-sweep must be at least 1s, not %s", g.LeaseSweep)
	}
	return nil
}

// register adds the lease keeper and the webhook deliverer to the River
// workers and returns the periodic jobs to schedule.
func (g guardrailsConfig) register(st *store.Store, workers *river.Workers, log *slog.Logger) []*river.PeriodicJob {
	leases := &provision.Leases{Store: st, Grace: g.LeaseGrace, Log: log.With("component", "leases")}
	leases.Register(workers)
	hooks := &provision.Webhooks{Store: st, URLs: g.WebhookURLs, Secret: g.WebhookSecret, BaseURL: g.BaseURL,
		Log: log.With("component", "webhooks")}
	hooks.Register(workers)
	if len(g.WebhookURLs) > 0 {
		st.EnableWebhooks()
		eps := make([]string, len(g.WebhookURLs))
		for i, u := range g.WebhookURLs {
			eps[i] = provision.Endpoint(u)
		}
		log.Info("webhooks enabled", "endpoints", eps, "signed", g.WebhookSecret != "")
		if g.WebhookSecret == "" {
			log.Warn("PADDOCK_WEBHOOK_SECRET is not set: webhook calls are not signed")
		}
	}
	return leases.PeriodicJobs(g.LeaseSweep)
}

// demoQuota is the payments team's quota in `portal dev`: enough for the
// demo, small enough that the quota panel has something to show.
var demoQuota = store.Quota{VCPU: intPtr(16), MemoryMiB: intPtr(32 * 1024), VMs: intPtr(10), DiskGiB: intPtr(200)}

func intPtr(n int) *int { return &n }

// seedGuardrails gives the demo team a quota (unless it has one) and applies
// the example approval rules. Like the rest of the seed it is idempotent.
func seedGuardrails(ctx context.Context, st *store.Store, team store.Team, log *slog.Logger) error {
	q, err := st.TeamQuota(ctx, team.ID)
	if err != nil {
		return err
	}
	if !q.Limited() {
		dq := demoQuota
		dq.TeamID = team.ID
		if err := st.SetTeamQuota(ctx, dq, store.Actor{Name: "portal dev"}); err != nil {
			return fmt.Errorf("seed quota: %w", err)
		}
		log.Info("seeded quota", "team", team.Name)
	}
	data, err := fs.ReadFile(templates.PolicyFS, "policy/approval-rules.yaml")
	if err != nil {
		return err
	}
	rules, err := store.ParseApprovalRulesYAML("approval-rules.yaml", data)
	if err != nil {
		return err
	}
	changes, err := st.ApplyApprovalRules(ctx, rules, false, false, store.Actor{Name: "portal dev"})
	if err != nil {
		return fmt.Errorf("seed approval rules: %w", err)
	}
	for _, c := range changes {
		if c.Change != "unchanged" {
			log.Info("seeded approval rule", "scope", c.Scope, "change", c.Change)
		}
	}
	return nil
}
