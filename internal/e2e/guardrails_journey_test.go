package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// approvalFor returns the data-testid of the section on /approvals that
// holds the request named name.
func approvalFor(ctx context.Context, name string) (string, error) {
	id, err := eval[*string](ctx, fmt.Sprintf(`[...document.querySelectorAll('section[data-testid^="approval-"]')]
		.find(s => (s.querySelector('h2 a')?.textContent ?? '').trim().endsWith('/' + %s))?.dataset.testid ?? null`, js(name)))
	if err != nil {
		return "", err
	}
	if id == nil {
		queue, _ := eval[string](ctx, `document.querySelector('main')?.innerText ?? document.body.innerText`)
		return "", fmt.Errorf("no approval for %q on /approvals; the page reads:\n%s", name, queue)
	}
	return *id, nil
}

// TestManagerApprovesAndRejects: a developer asks twice for a template that
// needs approval; the manager approves one and rejects the other with a
// comment; the developer sees both outcomes; the history lists both and
// exports them as CSV.
func TestManagerApprovesAndRejects(t *testing.T) {
	j := newJourney(t)
	key := newSSHKey(t)
	const okName, noName, comment = "e2e-approved", "e2e-rejected", "Use ubuntu-2404 instead, please."
	paths := map[string]string{}

	j.step("developer-signed-in", func(ctx context.Context) error {
		return j.signIn(ctx, "developer", "Dana Developer")
	})
	for _, name := range []string{okName, noName} {
		j.step("requested-"+name, func(ctx context.Context) error {
			resp, err := j.open(ctx, "/requests/new?template=centos-stream9")
			if err != nil {
				return err
			}
			if err := expectPage(resp, 200, regexp.MustCompile(`^/requests/new\?template=centos-stream9$`)); err != nil {
				return err
			}
			if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#justification"), "e2e: needs a CentOS box")); err != nil {
				return err
			}
			p, err := submitRequest(ctx, name, key)
			if err != nil {
				return err
			}
			paths[name] = p
			state, _, err := text(ctx, "[data-testid=state]")
			if err != nil {
				return err
			}
			t.Logf("%s at %s: %s", name, p, state)
			if state != "pending approval" {
				return fmt.Errorf("a new centos-stream9 request shows %q, want pending approval", state)
			}
			return nil
		})
	}

	j.step("manager-signed-in", func(ctx context.Context) error {
		return j.signIn(ctx, "manager", "")
	})

	j.step("approvals-queue", func(ctx context.Context) error {
		resp, err := j.open(ctx, "/approvals")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/approvals$`)); err != nil {
			return err
		}
		for _, n := range []string{okName, noName} {
			if _, err := approvalFor(ctx, n); err != nil {
				return err
			}
		}
		return j.checkA11y(ctx, "approvals")
	})

	j.step("approved", func(ctx context.Context) error {
		id, err := approvalFor(ctx, okName)
		if err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid="+id+"] [data-testid=approve]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/approvals\?decided=\d+$`)); err != nil {
			return err
		}
		done, _, err := text(ctx, "[data-testid=decided]")
		if err != nil {
			return err
		}
		if !strings.Contains(done, okName) || !strings.Contains(done, "approved") {
			return fmt.Errorf("after approving, the page says %q", done)
		}
		return nil
	})

	j.step("reject-without-comment-explained", func(ctx context.Context) error {
		id, err := approvalFor(ctx, noName)
		if err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid="+id+"] [data-testid=reject]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 422, regexp.MustCompile(`^/approvals/\d+/reject$`)); err != nil {
			return err
		}
		// The summary is at the top, has the focus, and links to the
		// comment; the address is the queue's again.
		if loc, err := eval[string](ctx, `location.pathname + location.search`); err != nil || loc != "/approvals" {
			return fmt.Errorf("after a refused reject the address is %q (%v), want /approvals", loc, err)
		}
		focused, err := eval[string](ctx, `document.activeElement?.dataset?.testid ?? ''`)
		if err != nil || focused != "form-errors" {
			return fmt.Errorf("the focus is on %q (%v), want the error summary", focused, err)
		}
		if top, err := eval[float64](ctx, `document.querySelector('[data-testid=form-errors]').getBoundingClientRect().top`); err != nil || top < 0 || top > 900 {
			return fmt.Errorf("the error summary is at %vpx from the top of the window (%v), want within it", top, err)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("[data-testid=form-errors] a"))); err != nil {
			return err
		}
		if f, err := eval[string](ctx, `document.activeElement?.name ?? ''`); err != nil || f != "comment" {
			return fmt.Errorf("the summary's link moved the focus to %q (%v), want the comment field", f, err)
		}
		return j.checkA11y(ctx, "approvals with an error")
	})

	j.step("rejected", func(ctx context.Context) error {
		id, err := approvalFor(ctx, noName)
		if err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("[data-testid="+id+"] textarea[name=comment]"), comment)); err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid="+id+"] [data-testid=reject]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/approvals\?decided=\d+$`)); err != nil {
			msg, _, _ := text(ctx, "[data-testid=error-comment]")
			return fmt.Errorf("%w (comment error %q)", err, msg)
		}
		done, _, err := text(ctx, "[data-testid=decided]")
		if err != nil {
			return err
		}
		if !strings.Contains(done, noName) || !strings.Contains(done, "rejected") {
			return fmt.Errorf("after rejecting, the page says %q", done)
		}
		if _, ok, _ := text(ctx, "[data-testid=queue-empty]"); !ok {
			return fmt.Errorf("the queue is not empty after both decisions")
		}
		return nil
	})

	j.step("developer-sees-outcomes", func(ctx context.Context) error {
		if err := j.signIn(ctx, "developer", "Dana Developer"); err != nil {
			return err
		}
		resp, err := j.open(ctx, paths[okName])
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, requestPagePath); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the approved request to be approved, provisioning or running",
			`['approved', 'provisioning', 'running'].includes((document.querySelector('[data-testid=state]')?.textContent ?? '').trim())`); err != nil {
			state, _, _ := text(ctx, "[data-testid=state]")
			return fmt.Errorf("%w: it shows %q", err, state)
		}
		if s, _, _ := text(ctx, "[data-testid=approvals]"); !strings.Contains(s, "approved") {
			return fmt.Errorf("the approved request's approval reads %q", s)
		}
		resp, err = j.open(ctx, paths[noName])
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, requestPagePath); err != nil {
			return err
		}
		if err := waitState(ctx, "rejected"); err != nil {
			return err
		}
		s, err := eval[string](ctx, `document.body.innerText`)
		if err != nil {
			return err
		}
		if !strings.Contains(s, comment) {
			return fmt.Errorf("the rejected request's page does not show the comment %q", comment)
		}
		return nil
	})

	j.step("history-and-csv", func(ctx context.Context) error {
		if err := j.signIn(ctx, "manager", ""); err != nil {
			return err
		}
		resp, err := j.open(ctx, "/history")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/history$`)); err != nil {
			return err
		}
		rows, err := eval[string](ctx, `document.querySelector('[data-testid=history]')?.innerText ?? ''`)
		if err != nil {
			return err
		}
		for _, n := range []string{okName, noName} {
			if !strings.Contains(rows, n) {
				return fmt.Errorf("the history does not list %q:\n%s", n, rows)
			}
		}
		csv, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector('[data-testid=history-csv]').href).then(r => {
			if (!r.ok) throw new Error('HTTP ' + r.status);
			return r.text();
		})`, chromedp.EvalAwaitPromise))
		if err != nil {
			return fmt.Errorf("fetch the CSV: %w", err)
		}
		header, _, _ := strings.Cut(csv, "\n")
		if !strings.Contains(strings.ToLower(header), "name") || strings.Contains(header, okName) {
			return fmt.Errorf("the CSV's first line is not a header: %q", header)
		}
		for _, n := range []string{okName, noName} {
			if !strings.Contains(csv, n) {
				return fmt.Errorf("the CSV does not list %q:\n%s", n, csv)
			}
		}
		return j.checkA11y(ctx, "history")
	})
}
