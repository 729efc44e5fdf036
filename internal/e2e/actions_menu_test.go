package e2e

import (
	"context"
	"fmt"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// actionsMenuByKeyboard checks, on the page of a running VM, that the
// primary actions are buttons at the top and the secondary ones are in a
// closed "More actions" menu that the keyboard opens (Enter), enters (Tab)
// and closes (Escape, the focus back on its button); that a live update
// keeps it open with the focus where it was; and that the destructive
// actions are in the danger area, not in the menu.
func actionsMenuByKeyboard(ctx context.Context, j *journey) error {
	if err := settle(ctx); err != nil {
		return err
	}
	layout, err := eval[string](ctx, `(() => {
		const q = s => document.querySelector(s);
		const bar = q('[data-testid=actions]'), menu = q('#more-actions'), danger = q('[data-testid=danger-zone]');
		if (!bar || !menu || !danger) return 'the toolbar, the menu or the danger area is missing';
		for (const id of ['action-stop', 'action-restart', 'open-console']) {
			const el = q('[data-testid=' + id + ']');
			if (!el || !bar.contains(el) || menu.contains(el)) return id + ' is not a button of the toolbar';
		}
		if (!menu.querySelector('[data-testid=extend]') || !menu.querySelector('[data-testid=pet-toggle]')) return 'extend or pet is not in the menu';
		for (const id of ['rebuild', 'action-delete']) {
			const el = q('[data-testid=' + id + ']');
			if (!el || !danger.contains(el) || bar.contains(el)) return id + ' is not in the danger area alone';
		}
		if (menu.open) return 'the menu is open before anyone opened it';
		if (q('[data-testid=extend]').checkVisibility()) return 'the closed menu shows its items';
		return '';
	})()`)
	if err != nil {
		return err
	}
	if layout != "" {
		return fmt.Errorf("the VM page's actions: %s", layout)
	}
	focused := func() (string, error) {
		return eval[string](ctx, `document.activeElement?.dataset?.testid ?? document.activeElement?.tagName ?? ''`)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("[data-testid=more-actions-toggle]")), chromedp.KeyEvent(kb.Enter)); err != nil {
		return err
	}
	if err := waitUntil(ctx, "Enter to open the menu", `document.getElementById('more-actions').open === true`); err != nil {
		return err
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
		return err
	}
	if f, err := focused(); err != nil || f != "extend" {
		return fmt.Errorf("Tab from the open menu's button reaches %q (%v), want its first item, extend", f, err)
	}
	if err := j.checkA11y(ctx, "request with its actions menu open"); err != nil {
		return err
	}
	// A live update replaces the panel: the menu stays open, the focus on its item.
	if _, err := eval[bool](ctx, `(() => {
		window.__swapped = false;
		const live = document.getElementById('live');
		live.addEventListener('htmx:afterSwap', () => { window.__swapped = true; }, {once: true});
		htmx.ajax('GET', live.dataset.liveSrc, {target: live, swap: 'innerHTML'});
		return true;
	})()`); err != nil {
		return err
	}
	if err := waitUntil(ctx, "the live fragment to be swapped", `window.__swapped === true`); err != nil {
		return err
	}
	if open, err := eval[bool](ctx, `document.getElementById('more-actions').open`); err != nil || !open {
		return fmt.Errorf("a live update closed the menu (%v)", err)
	}
	if f, err := focused(); err != nil || f != "extend" {
		return fmt.Errorf("after a live update the focus is on %q (%v), want extend in the open menu", f, err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		return err
	}
	if open, err := eval[bool](ctx, `document.getElementById('more-actions').open`); err != nil || open {
		return fmt.Errorf("Escape did not close the menu (%v)", err)
	}
	if f, err := focused(); err != nil || f != "more-actions-toggle" {
		return fmt.Errorf("after Escape the focus is on %q (%v), want the menu's button", f, err)
	}
	return nil
}
