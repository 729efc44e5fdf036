package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// catalogHas reports whether the catalog page shows the template's card.
func catalogHas(ctx context.Context, j *journey, name string) (bool, error) {
	resp, err := j.open(ctx, "/catalog")
	if err != nil {
		return false, err
	}
	if err := expectPage(resp, 200, catalogPath); err != nil {
		return false, err
	}
	_, ok, err := text(ctx, "[data-testid=catalog] > [data-testid=template-"+name+"]")
	return ok, err
}

// TestPlatformPublishesAndDeprecates: the platform team edits a template,
// watches the live preview, publishes version 2, then deprecates the
// template with a note, and developers no longer find it in the catalog.
func TestPlatformPublishesAndDeprecates(t *testing.T) {
	j := newJourney(t)
	const tmpl = "cirros"
	const desc = "Tiny CirrOS for smoke tests (e2e edit)."
	const note = "e2e: replaced by ubuntu-2404"

	j.step("developer-sees-cirros", func(ctx context.Context) error {
		if err := j.signIn(ctx, "developer", "Dana Developer"); err != nil {
			return err
		}
		ok, err := catalogHas(ctx, j, tmpl)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the developer catalog does not offer %s before the test", tmpl)
		}
		return nil
	})

	j.step("platform-templates", func(ctx context.Context) error {
		if err := j.signIn(ctx, "platform", ""); err != nil {
			return err
		}
		resp, err := j.open(ctx, "/platform/templates")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/platform/templates$`)); err != nil {
			return err
		}
		if _, ok, _ := text(ctx, "[data-testid=row-"+tmpl+"]"); !ok {
			return fmt.Errorf("the templates table has no row for %s", tmpl)
		}
		return nil
	})

	j.step("edit-form", func(ctx context.Context) error {
		resp, err := j.open(ctx, "/platform/templates/"+tmpl+"/edit")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/platform/templates/`+tmpl+`/edit$`)); err != nil {
			return err
		}
		return j.checkA11y(ctx, "template form")
	})

	j.step("live-preview", func(ctx context.Context) error {
		// Mark the preview shown now; the one htmx swaps in has no mark.
		if _, err := eval[bool](ctx, `(() => { const p = document.querySelector('[data-testid=preview-yaml]'); if (p) p.__old = true; return true; })()`); err != nil {
			return err
		}
		if err := chromedp.Do(ctx,
			chromedp.Clear(chromedp.CSS("#description")),
			chromedp.SendKeys(chromedp.CSS("#description"), desc),
		); err != nil {
			return fmt.Errorf("edit the description: %w", err)
		}
		err := waitUntil(ctx, "the live preview to show a VirtualMachine",
			`(() => { const p = document.querySelector('#preview [data-testid=preview-yaml]'); return !!p && !p.__old && p.textContent.includes('kind: VirtualMachine'); })()`)
		if err != nil {
			dctx, cancel := diagnose(ctx)
			defer cancel()
			prev, _, _ := text(dctx, "#preview")
			return fmt.Errorf("%w; the preview reads %q", err, prev)
		}
		return nil
	})

	j.step("published-v2", func(ctx context.Context) error {
		if err := waitUntil(ctx, "no preview request in flight",
			`!document.querySelector('[data-testid=template-form]').classList.contains('htmx-request')`); err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid=save]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/platform/templates/`+tmpl+`\?saved=published$`)); err != nil {
			errs, _, _ := text(ctx, "[data-testid=form-errors]")
			return fmt.Errorf("%w (form errors %q)", err, errs)
		}
		saved, _, err := text(ctx, "[data-testid=saved]")
		if err != nil {
			return err
		}
		if !strings.Contains(saved, "Published version 2") {
			return fmt.Errorf("after publishing, the page says %q", saved)
		}
		if _, ok, _ := text(ctx, "[data-testid=version-2]"); !ok {
			return fmt.Errorf("the version history has no version 2")
		}
		return nil
	})

	j.step("deprecate-needs-note", func(ctx context.Context) error {
		resp, err := clickAndLoad(ctx, "[data-testid=deprecate]")
		if err != nil {
			return err
		}
		if resp.Status < 400 {
			return fmt.Errorf("deprecating without a note answered HTTP %d at %s, want a refusal", resp.Status, pathOf(resp.URL))
		}
		if st, _, _ := text(ctx, "[data-testid=status]"); st == "deprecated" {
			return fmt.Errorf("the template was deprecated without a note")
		}
		return nil
	})

	j.step("deprecated", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#note"), note)); err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid=deprecate]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/platform/templates/`+tmpl+`\?saved=deprecated$`)); err != nil {
			return err
		}
		if st, _, _ := text(ctx, "[data-testid=status]"); st != "deprecated" {
			return fmt.Errorf("the template's status reads %q, want deprecated", st)
		}
		if n, _, _ := text(ctx, "[data-testid=deprecation-note]"); !strings.Contains(n, note) {
			return fmt.Errorf("the deprecation note reads %q, want it to contain %q", n, note)
		}
		return nil
	})

	j.step("developer-catalog-without-cirros", func(ctx context.Context) error {
		if err := j.signIn(ctx, "developer", "Dana Developer"); err != nil {
			return err
		}
		ok, err := catalogHas(ctx, j, tmpl)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("the developer catalog still offers the deprecated %s", tmpl)
		}
		return nil
	})
}
