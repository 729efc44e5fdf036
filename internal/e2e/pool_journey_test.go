package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// membersRunning is a predicate: the pool panel lists n members, each
// Running with an IP.
func membersRunning(n int) string {
	return fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('[data-testid=member]')];
		return rows.length === %d && rows.every(r =>
			(r.querySelector('[data-testid=member-status]')?.textContent ?? '').includes('Running') &&
			(r.querySelector('[data-testid=member-ip]')?.textContent ?? '').trim().match(/\d+\.\d+\.\d+\.\d+/));
	})()`, n)
}

// TestDeveloperRequestsAndScalesAPool: the developer asks for a pool of two
// cirros VMs on the request form, watches both members come up with their
// IPs without reloading, scales the pool to three from its page and sees the
// third member arrive live.
func TestDeveloperRequestsAndScalesAPool(t *testing.T) {
	j := newJourney(t)
	key := newSSHKey(t)

	j.step("pool-requested", func(ctx context.Context) error {
		if err := j.signIn(ctx, "developer", "Dana Developer"); err != nil {
			return err
		}
		resp, err := j.open(ctx, "/requests/new?template=cirros")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/requests/new\?template=cirros$`)); err != nil {
			return err
		}
		// Changing the number refreshes the form (quota and policy for a
		// pool): wait for that before typing, as a person would see it.
		// A keyboard user is on the field: the refreshed form keeps the focus there.
		if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#replicas")), chromedp.SetValue(chromedp.CSS("#replicas"), "2")); err != nil {
			return err
		}
		if _, err := eval[bool](ctx, `document.querySelector('#replicas').dispatchEvent(new Event('change', {bubbles: true}))`); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the form to show the quota for a pool of 2",
			`(document.querySelector('[data-testid=quota-VMs]')?.textContent ?? '').includes('+2') && !document.querySelector('.htmx-request')`); err != nil {
			return err
		}
		if id, err := eval[string](ctx, `document.activeElement?.id ?? ''`); err != nil || id != "replicas" {
			return fmt.Errorf("after the form refreshed, the focus is on %q (%v), want #replicas", id, err)
		}
		_, err = submitRequest(ctx, "e2e-herd", key)
		return err
	})

	j.step("members-running", func(ctx context.Context) error {
		if _, err := waitLive(ctx, "running"); err != nil {
			return err
		}
		if err := waitUntil(ctx, "two members running with IPs", membersRunning(2)); err != nil {
			dctx, cancel := diagnose(ctx)
			defer cancel()
			pool, _, _ := text(dctx, "[data-testid=pool]")
			return fmt.Errorf("%w; the pool panel reads %q", err, pool)
		}
		return j.checkA11y(ctx, "pool")
	})

	j.step("scaled-to-three", func(ctx context.Context) error {
		if err := settle(ctx); err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("[data-testid=scale-replicas]"), "3")); err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid=scale]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, requestPagePath); err != nil {
			return err
		}
		if _, err := liveWatch(ctx); err != nil {
			return err
		}
		if err := waitUntil(ctx, "three members running with IPs", membersRunning(3)); err != nil {
			dctx, cancel := diagnose(ctx)
			defer cancel()
			pool, _, _ := text(dctx, "[data-testid=pool]")
			return fmt.Errorf("%w; the pool panel reads %q", err, pool)
		}
		if m, _ := eval[int](ctx, `window.__marker ?? 0`); m != 1 {
			return fmt.Errorf("the page was reloaded while the pool grew; members should arrive live")
		}
		body, _, _ := text(ctx, "main")
		if !strings.Contains(body, "Pool scaled") {
			return fmt.Errorf("the timeline does not record the scale")
		}
		return nil
	})
}
