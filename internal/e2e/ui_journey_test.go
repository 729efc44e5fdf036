package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// widths are the viewport widths every main page is checked at: a small
// phone and a laptop.
var widths = []struct {
	name          string
	width, height int64
}{{"phone", 360, 800}, {"laptop", 1366, 900}}

// mainPages are the pages the platform persona (who sees them all) opens
// from the navigation, and the details a click away.
var mainPages = []string{
	"/catalog", "/catalog/ubuntu-2404", "/requests/new?template=ubuntu-2404", "/requests", "/history", "/insight",
	"/approvals", "/platform/quotas", "/platform/rules", "/platform/webhooks", "/platform/templates",
	"/platform/templates/ubuntu-2404", "/platform/templates/new", "/platform/rollouts", "/audit", "/profile",
}

// TestEveryPageFitsAPhone opens every main page at 360 px and at 1366 px and
// checks that none scrolls sideways: the navigation, tables, definition
// lists and commands fit or scroll inside themselves. A screenshot of each
// page at each width is kept, and written out when the test fails.
func TestEveryPageFitsAPhone(t *testing.T) {
	j := newJourney(t)
	var reqPath string
	j.step("a-running-vm", func(ctx context.Context) error {
		if err := j.signIn(ctx, "developer", "Dana Developer"); err != nil {
			return err
		}
		if _, err := j.open(ctx, "/requests/new?template=ubuntu-2404"); err != nil {
			return err
		}
		var err error
		if reqPath, err = submitRequest(ctx, "phone-check", newSSHKey(t)); err != nil {
			return err
		}
		// With its address and SSH command, the widest parts of the page.
		if _, err := waitIP(ctx); err != nil {
			return err
		}
		_, err = clickAndLoad(ctx, "header .who button[type=submit]")
		return err
	})
	j.step("signed-in", func(ctx context.Context) error {
		return j.signIn(ctx, "platform", "")
	})
	pages := append(append([]string(nil), mainPages...), reqPath)
	for _, w := range widths {
		for _, p := range pages {
			j.step(w.name+p, func(ctx context.Context) error {
				if err := chromedp.Do(ctx, chromedp.EmulateViewport(w.width, w.height)); err != nil {
					return err
				}
				resp, err := j.open(ctx, p)
				if err != nil {
					return err
				}
				if err := expectPage(resp, 200, regexp.MustCompile(`^`+regexp.QuoteMeta(p)+`$`)); err != nil {
					return err
				}
				if err := fits(ctx); err != nil {
					t.Errorf("%s at %d px: %v", p, w.width, err)
				}
				return nil
			})
		}
	}
	// Signed out: the sign-in page.
	j.step("phone/signin", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 800)); err != nil {
			return err
		}
		// The navigation is behind the Menu button; Sign out is in it.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("[data-testid=menu-toggle]"))); err != nil {
			return err
		}
		if exp, _, _ := attr(ctx, "[data-testid=menu-toggle]", "aria-expanded"); exp != "true" {
			return fmt.Errorf("the menu button says aria-expanded=%q after a click", exp)
		}
		if err := fits(ctx); err != nil {
			return fmt.Errorf("with the menu open: %w", err)
		}
		if _, err := clickAndLoad(ctx, "header .who button[type=submit]"); err != nil {
			return err
		}
		return fits(ctx)
	})
}

// fits checks that the page does not scroll sideways, naming the widest
// elements when it does.
func fits(ctx context.Context) error {
	over, err := eval[[]string](ctx, `(() => {
		const w = window.innerWidth;
		if (document.documentElement.scrollWidth <= w) return [];
		const out = [];
		for (const el of document.querySelectorAll('body *')) {
			const r = el.getBoundingClientRect();
			if (r.right > w + 1) {
				let p = el.parentElement, inside = false;
				for (; p; p = p.parentElement) {
					const o = getComputedStyle(p).overflowX;
					if (o === 'auto' || o === 'scroll' || o === 'hidden') { inside = true; break; }
				}
				if (!inside) out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + String(el.className).split(' ').join('.') : '') + ' right=' + Math.round(r.right));
			}
			if (out.length >= 8) break;
		}
		if (out.length === 0) {
			// Nothing sticks out by its box: name what overflows its own box.
			for (const el of document.querySelectorAll('main *')) {
				if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === 'visible' && el.clientWidth > 0) {
					out.push(el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ').join('.') : '') + ' scrollWidth=' + el.scrollWidth);
				}
				if (out.length >= 8) break;
			}
		}
		return ['document.scrollWidth ' + document.documentElement.scrollWidth + ' > innerWidth ' + w].concat(out);
	})()`)
	if err != nil {
		return err
	}
	if len(over) > 0 {
		return fmt.Errorf("the page scrolls sideways: %s", strings.Join(over, "; "))
	}
	return nil
}
