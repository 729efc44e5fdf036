package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPlatformPagesReadAtAGlance opens the platform persona's pages in a real
// Chromium against `portal dev` (simulated cluster, real PostgreSQL) at
// 1366 px: the navigation stays on one line, the sub-tab of the page is
// marked, the quotas are one table, the history filters line up, the
// template form is as wide as other pages, the audit log's times are on one
// line and nothing scrolls sideways (at 360 px too); axe-core finds nothing.
func TestPlatformPagesReadAtAGlance(t *testing.T) {
	j := newJourney(t)
	j.step("signed-in", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
			return err
		}
		return j.signIn(ctx, "platform", "")
	})
	j.step("quotas", func(ctx context.Context) error {
		if _, err := j.open(ctx, "/platform/quotas"); err != nil {
			return err
		}
		if err := navOnOneLine(ctx); err != nil {
			return err
		}
		tab, err := eval[string](ctx, `(() => { const a = document.querySelector('nav[aria-label=Guardrails] a[aria-current=page]');
			return a ? a.textContent.trim() + ' ' + getComputedStyle(a).fontWeight : ''; })()`)
		if err != nil {
			return err
		}
		if tab != "Quotas 700" {
			return fmt.Errorf("the current sub-tab reads %q, want Quotas in bold", tab)
		}
		n, err := eval[[]int](ctx, `[document.querySelectorAll('table.quotas').length, document.querySelectorAll('table.quotas tbody tr').length,
			document.querySelectorAll('section.panel').length, document.querySelectorAll('table.quotas meter').length]`)
		if err != nil {
			return err
		}
		if n[0] != 1 || n[1] < 1 || n[2] != 0 {
			return fmt.Errorf("%d quota tables with %d rows and %d panels; want one table, no panels", n[0], n[1], n[2])
		}
		if err := fits(ctx); err != nil {
			return err
		}
		return j.checkA11y(ctx, "quotas")
	})
	j.step("quota-edit", func(ctx context.Context) error {
		if _, err := clickAndLoad(ctx, "table.quotas tbody tr:first-child a[data-testid^=edit-]"); err != nil {
			return err
		}
		n, err := eval[int](ctx, `document.querySelectorAll('form.quota-form').length`)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d quota forms open after Edit, want 1", n)
		}
		return j.checkA11y(ctx, "quota edit")
	})
	j.step("history-filters", func(ctx context.Context) error {
		if _, err := j.open(ctx, "/history"); err != nil {
			return err
		}
		// Labels of one row share a line; every input is drawn alike.
		odd, err := eval[[]string](ctx, `(() => { const fs = [...document.querySelectorAll('form.history-filters .field')];
			const out = []; const t0 = fs[0].querySelector('label').getBoundingClientRect().top;
			const h0 = fs[0].querySelector('input, select').getBoundingClientRect().height;
			for (const f of fs) { const l = f.querySelector('label'), i = f.querySelector('input, select'), r = f.getBoundingClientRect();
				if (Math.abs(r.top - fs[0].getBoundingClientRect().top) < 4 && Math.abs(l.getBoundingClientRect().top - t0) > 2) out.push(l.textContent + ': label off the row');
				if (getComputedStyle(i).borderTopStyle !== 'solid' || Math.abs(i.getBoundingClientRect().height - h0) > 3) out.push(l.textContent + ': input drawn differently'); }
			return out; })()`)
		if err != nil {
			return err
		}
		if len(odd) > 0 {
			return fmt.Errorf("history filters: %v", odd)
		}
		return nil
	})
	j.step("template-form-width", func(ctx context.Context) error {
		widthOf := func(path string) (float64, error) {
			if _, err := j.open(ctx, path); err != nil {
				return 0, err
			}
			return eval[float64](ctx, `document.querySelector('main').getBoundingClientRect().width`)
		}
		form, err := widthOf("/platform/templates/new")
		if err != nil {
			return err
		}
		list, err := widthOf("/platform/templates")
		if err != nil {
			return err
		}
		if form != list {
			return fmt.Errorf("the template form is %.0f px wide, the other pages %.0f px", form, list)
		}
		return nil
	})
	for _, w := range widths {
		j.step("audit-"+w.name, func(ctx context.Context) error {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(w.width, w.height)); err != nil {
				return err
			}
			if _, err := j.open(ctx, "/audit"); err != nil {
				return err
			}
			// Every time stamp on one line: as tall as one line of its cell.
			tall, err := eval[[]string](ctx, `[...document.querySelectorAll('table.audit td.when time')].filter(e => {
				const lh = parseFloat(getComputedStyle(e).lineHeight) || 20; return e.getBoundingClientRect().height > lh * 1.5; }).map(e => e.textContent)`)
			if err != nil {
				return err
			}
			if len(tall) > 0 {
				return fmt.Errorf("%d time stamps wrap, the first %q", len(tall), tall[0])
			}
			links, err := eval[int](ctx, `document.querySelectorAll('table.audit [data-testid=audit-target]').length`)
			if err != nil {
				return err
			}
			if links == 0 {
				return fmt.Errorf("no target of the audit log is a link")
			}
			if err := fits(ctx); err != nil {
				return err
			}
			return j.checkA11y(ctx, "audit at "+w.name)
		})
	}
}

// navOnOneLine checks that every link of the main navigation and the
// user's name sit on the same line of the header.
func navOnOneLine(ctx context.Context) error {
	tops, err := eval[[]string](ctx, `(() => { const els = [...document.querySelectorAll('header.top nav a, header.top .who a, header.top .who button')];
		const t0 = els[0].getBoundingClientRect().top;
		return els.filter(e => Math.abs(e.getBoundingClientRect().top - t0) > 8).map(e => e.textContent.trim()); })()`)
	if err != nil {
		return err
	}
	if len(tops) > 0 {
		return fmt.Errorf("the header wraps: %v are on another line", tops)
	}
	return nil
}
