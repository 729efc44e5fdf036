package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// consoleScreenPixel reads the colour of a pixel of noVNC's canvas.
const consoleScreenPixel = `(() => {
	const c = document.querySelector('.console-screen canvas');
	if (!c || c.width < 10) return '';
	const d = c.getContext('2d').getImageData(5, 5, 1, 1).data;
	return [d[0], d[1], d[2]].map(v => v.toString(16).padStart(2, '0')).join('');
})()`

// TestDeveloperOpensConsoles: a developer sees the thumbnail of a running
// VM's screen on its page, opens the screen and the serial console of the
// VM of the simulated cluster (the bridge, noVNC and
// xterm.js are real, loaded under the site's content security policy; the
// guest is the simulator's), types into the serial console, and is told
// when the VM stops under it, with a way to reconnect.
func TestDeveloperOpensConsoles(t *testing.T) {
	j := newJourney(t)
	key := newSSHKey(t)
	const vmName = "e2e-console"
	var reqPath string

	j.step("signed-in", func(ctx context.Context) error {
		return j.signIn(ctx, "developer", "Dana Developer")
	})

	j.step("running", func(ctx context.Context) error {
		if _, err := j.open(ctx, "/requests/new?template=ubuntu-2404"); err != nil {
			return err
		}
		p, err := submitRequest(ctx, vmName, key)
		if err != nil {
			return err
		}
		reqPath = p
		_, err = waitLive(ctx, "running")
		return err
	})

	j.step("thumbnail", func(ctx context.Context) error {
		// The VM page shows the simulated screen, as the console will.
		if err := waitUntil(ctx, "the thumbnail of the simulated screen", thumbnailPixel+` === '1b263b'`); err != nil {
			px, _ := eval[string](ctx, thumbnailPixel)
			return fmt.Errorf("%w; pixel (5,5) is %q", err, px)
		}
		return nil
	})

	j.step("screen", func(ctx context.Context) error {
		if err := settle(ctx); err != nil {
			return err
		}
		resp, err := clickAndLoad(ctx, "[data-testid=open-console]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/requests/\d+/console/vnc$`)); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the console to connect", `document.getElementById('console')?.dataset.consoleState === 'connected'`); err != nil {
			state, _, _ := text(ctx, "[data-testid=console-state]")
			return fmt.Errorf("%w; the page says %q", err, state)
		}
		if err := waitUntil(ctx, "the desktop name", fmt.Sprintf(`document.querySelector('[data-testid=console-desktop]').textContent === %s`, js(vmName))); err != nil {
			return err
		}
		// The simulated screen's background, as noVNC drew it.
		if err := waitUntil(ctx, "the screen on the canvas", consoleScreenPixel+` === '1b263b'`); err != nil {
			px, _ := eval[string](ctx, consoleScreenPixel)
			return fmt.Errorf("%w; pixel (5,5) is %q", err, px)
		}
		return nil
	})

	j.step("serial", func(ctx context.Context) error {
		if _, err := j.open(ctx, reqPath+"/console/serial"); err != nil {
			return err
		}
		rows := `(document.querySelector('.xterm-rows')?.textContent ?? '')`
		if err := waitUntil(ctx, "the login prompt", rows+`.includes(`+js(vmName+" login:")+`)`); err != nil {
			got, _ := eval[string](ctx, rows)
			return fmt.Errorf("%w; the terminal shows %q", err, got)
		}
		// Typed as a person types: text into xterm.js's input, then Enter.
		// (chromedp.SendKeys sends each key both as a key press and as a
		// character, which a terminal rightly reads twice.)
		if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(".xterm-helper-textarea"))); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: "dana"}); err != nil {
			return err
		}
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			enter := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, enter); err != nil {
				return err
			}
		}
		if err := waitUntil(ctx, "the echo and the password prompt", rows+`.includes('login: dana') && `+rows+`.includes('Password:')`); err != nil {
			got, _ := eval[string](ctx, rows)
			return fmt.Errorf("%w; the terminal shows %q", err, got)
		}
		return nil
	})

	j.step("vm-stopped", func(ctx context.Context) error {
		// Stop the VM from this page (same origin), as another tab would.
		if _, err := eval[any](ctx, `fetch(`+js(reqPath+"/actions/stop")+`, {method: 'POST'}) && true`); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the page to say the console was lost", `document.getElementById('console').dataset.consoleState === 'lost' && !document.querySelector('[data-testid=console-reconnect]').hidden`); err != nil {
			state, _, _ := text(ctx, "[data-testid=console-state]")
			return fmt.Errorf("%w; the page says %q", err, state)
		}
		msg, _, _ := text(ctx, "[data-testid=console-state]")
		if !strings.Contains(msg, "lost") {
			return fmt.Errorf("the page says %q", msg)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("[data-testid=console-reconnect]"))); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the page to say the VM is not running", `document.getElementById('console').dataset.consoleState === 'not-running'`); err != nil {
			state, _, _ := text(ctx, "[data-testid=console-state]")
			return fmt.Errorf("%w; the page says %q", err, state)
		}
		return nil
	})
	_ = t
}
