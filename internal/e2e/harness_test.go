package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/ssh"

	"paddock/internal/testdb"
)

const (
	// testBudget bounds a whole journey: app, browser and every step.
	testBudget = 2 * time.Minute
	// stepTimeout bounds one step of a journey.
	stepTimeout = 30 * time.Second
	// appStartTimeout bounds the wait for `portal dev` to say it listens.
	appStartTimeout = 60 * time.Second
	// chromiumPath is where Debian's chromium package puts the browser.
	chromiumPath = "/usr/bin/chromium"
)

// ---------------------------------------------------------------------------
// The app: `portal dev` on a private database.

// app is one running `portal dev`.
type app struct {
	URL string // http://127.0.0.1:PORT, no trailing slash
	DB  string // its database, for journeys that set the scene directly
}

var runningLine = regexp.MustCompile(`Paddock is running: open http://[^\s/]*:(\d+)`)

// startApp starts the portal binary that TestMain built, in dev mode with the
// simulated cluster, on a fresh migrated database, and waits until it listens.
// extraEnv (KEY=value) is added to its environment, over the defaults (a
// journey on a real API server sets KUBECONFIG and PADDOCK_CLUSTER).
// It is stopped (SIGTERM, then SIGKILL) when the test ends; its output goes to
// the test log when the test failed.
func startApp(t *testing.T, extraEnv ...string) *app {
	t.Helper()
	dbURL := testdb.NewURL(t) // dropped after the cleanups registered below

	cmd := exec.Command(portalBin, "dev", "--addr", "127.0.0.1:0")
	// exec keeps the last of duplicate keys: extraEnv wins.
	cmd.Env = append(appEnv(dbURL), extraEnv...)
	stdout := &lineWatcher{re: runningLine, found: make(chan string, 1)}
	stderr := &tailBuffer{max: 256 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s dev: %v", portalBin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()

	var ready bool
	t.Cleanup(func() {
		select {
		case <-done:
			if ready {
				t.Errorf("portal dev exited while the test was running: %v", waitErr)
			}
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Logf("portal dev still running 10s after SIGTERM; killing it")
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("portal dev stdout:\n%s", stdout)
			t.Logf("portal dev stderr (last %d KiB):\n%s", stderr.max>>10, stderr)
		}
	})

	select {
	case port := <-stdout.found:
		ready = true
		return &app{URL: "http://127.0.0.1:" + port, DB: dbURL}
	case <-done:
		t.Fatalf("portal dev exited before it was ready: %v", waitErr)
	case <-time.After(appStartTimeout):
		t.Fatalf("portal dev did not print %q within %s", "Paddock is running", appStartTimeout)
	}
	return nil
}

// appEnv is the environment of `portal dev`: the test's, without anything
// that would point it at another database or a real cluster.
func appEnv(dbURL string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || k == "KUBECONFIG" || strings.HasPrefix(k, "PADDOCK_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"DATABASE_URL="+dbURL,
		"PADDOCK_CLUSTER=simulated",
		"PADDOCK_SIM_DELAY=200ms",
		"PADDOCK_LOG_FORMAT=text",
	)
}

// lineWatcher collects a process's output and sends the first submatch of re
// found on a complete line to found.
type lineWatcher struct {
	re    *regexp.Regexp
	found chan string
	mu    sync.Mutex
	buf   bytes.Buffer
	seen  int  // bytes of buf already scanned
	sent  bool // found has its value
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for !w.sent {
		rest := w.buf.Bytes()[w.seen:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if m := w.re.FindSubmatch(rest[:i]); m != nil {
			w.found <- string(m[1])
			w.sent = true
		}
		w.seen += i + 1
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// ---------------------------------------------------------------------------
// The browser.

// journey is one test's browser session against one app.
type journey struct {
	t   *testing.T
	app *app
	ctx context.Context // the tab; ends with the test's budget

	chromeOut *tailBuffer

	mu       sync.Mutex
	shots    []shot
	dialogs  []string
	console  []string
	problems []string // uncaught exceptions in the page

	// knownA11y names axe-core rules (id → why) whose serious findings the
	// next checkA11y calls log instead of failing: known bugs, reported.
	knownA11y map[string]string
}

type shot struct {
	name string
	png  []byte
}

// newJourney skips in -short mode, fails when Chromium is missing, and
// otherwise starts the app and a fresh headless Chromium whose JavaScript
// dialogs are accepted. When the test fails, its screenshots are written to
// test-artifacts/e2e/<TestName>/ at the repository root.
func newJourney(t *testing.T) *journey {
	t.Helper()
	return newJourneyWith(t)
}

// newJourneyWith is newJourney with extraEnv added to the app's
// environment (see startApp).
func newJourneyWith(t *testing.T, extraEnv ...string) *journey {
	t.Helper()
	if testing.Short() {
		t.Skip("browser journey: skipped in -short mode (it needs headless Chromium and PostgreSQL)")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is missing (%v): the browser journeys need Debian's chromium package; install it with `apt-get install -y chromium` (or run go test -short to skip them)", err)
	}
	budget := testBudget
	if d, ok := t.Deadline(); ok && time.Until(d)-10*time.Second < budget {
		budget = time.Until(d) - 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	t.Cleanup(cancel) // runs last: after the browser and the app have stopped

	j := &journey{t: t, app: startApp(t, extraEnv...), chromeOut: &tailBuffer{max: 64 << 10}}

	profile, err := os.MkdirTemp("", "paddock-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeProfile(t, profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(j.chromeOut),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(j.notef("chromedp: ")))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits until Chromium has exited
	})
	j.ctx = tab
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start headless Chromium at %s: %v\n%s", chromiumPath, err, j.chromeOut)
	}

	// window.confirm (data-confirm forms) blocks the page until answered:
	// accept every dialog, and remember what it asked.
	dialogs := chromedp.Events(tab, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			j.mu.Lock()
			j.dialogs = append(j.dialogs, ev.Message)
			j.mu.Unlock()
			if _, err := chromedp.Call(tab, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				j.notef("accept dialog: ")("%v", err)
			}
		}
	}()
	messages := chromedp.Console(tab)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text)
			j.mu.Lock()
			j.console = append(j.console, line)
			if m.IsException() {
				j.problems = append(j.problems, line)
			}
			j.mu.Unlock()
		}
	}()

	t.Cleanup(j.finish) // runs first, while the browser still runs
	return j
}

// notef returns a printf-like func that records a line for the failure log;
// chromedp may call it after the test has ended, when t.Logf would panic.
func (j *journey) notef(prefix string) func(string, ...any) {
	return func(format string, args ...any) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.console = append(j.console, prefix+fmt.Sprintf(format, args...))
	}
}

// finish checks for uncaught exceptions, and on failure saves the
// screenshots and logs what the browser said.
func (j *journey) finish() {
	t := j.t
	j.mu.Lock()
	problems := append([]string(nil), j.problems...)
	j.mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the pages threw uncaught JavaScript exceptions:\n%s", strings.Join(problems, "\n"))
	}
	if !t.Failed() {
		return
	}
	j.screenshot("at-failure")
	dir := filepath.Join(repoRoot, "test-artifacts", "e2e", safeName(t.Name()))
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("screenshots: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshots: %v", err)
		return
	}
	j.mu.Lock()
	shots := append([]shot(nil), j.shots...)
	console := strings.Join(j.console, "\n")
	dialogs := strings.Join(j.dialogs, "\n")
	j.mu.Unlock()
	for i, s := range shots {
		p := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", i+1, s.name))
		if err := os.WriteFile(p, s.png, 0o644); err != nil {
			t.Logf("screenshots: %v", err)
		}
	}
	t.Logf("screenshots of every step (%d): %s", len(shots), dir)
	if dialogs != "" {
		t.Logf("dialogs accepted:\n%s", dialogs)
	}
	if console != "" {
		t.Logf("browser console:\n%s", console)
	}
	// Chromium complains about the missing D-Bus on every start; leave that out.
	var out []string
	for line := range strings.Lines(j.chromeOut.String()) {
		if !strings.Contains(line, ":ERROR:dbus/") && strings.TrimSpace(line) != "" {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	if len(out) > 0 {
		t.Logf("chromium output (last %d KiB, without D-Bus errors):\n%s", j.chromeOut.max>>10, strings.Join(out, "\n"))
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// removeProfile deletes Chromium's profile; a helper process may still be
// closing files in it for a moment after the browser exited.
func removeProfile(t *testing.T, dir string) {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("remove Chromium profile %s: %v", dir, err)
}

// step runs one step of the journey with its own timeout, then takes a
// screenshot of the page. An error from fn ends the test.
func (j *journey) step(name string, fn func(ctx context.Context) error) {
	j.t.Helper()
	ctx, cancel := context.WithTimeout(j.ctx, stepTimeout)
	err := fn(ctx)
	cancel()
	if err != nil {
		j.screenshot(name + "-FAILED")
		j.t.Fatalf("step %q: %v", name, err)
	}
	j.screenshot(name)
}

// screenshot keeps a full-page PNG of the tab in memory.
func (j *journey) screenshot(name string) {
	if j.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(j.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		j.notef("screenshot: ")("%s: %v", name, err)
		return
	}
	j.mu.Lock()
	j.shots = append(j.shots, shot{name: safeName(name), png: png})
	j.mu.Unlock()
}

// dialogsSeen returns the messages of the dialogs accepted so far.
func (j *journey) dialogsSeen() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.dialogs...)
}

// ---------------------------------------------------------------------------
// Actions and reads. Values are read with JavaScript in the page, which is
// robust against htmx replacing the nodes between a query and a read.

// open navigates to a path of the app and returns the document's response.
func (j *journey) open(ctx context.Context, path string) (*network.Response, error) {
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(j.app.URL+path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return resp, nil
}

// clickAndLoad clicks the element and waits for the page that the click
// loads; it returns the final document response (after redirects).
func clickAndLoad(ctx context.Context, sel string) (*network.Response, error) {
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		return nil, fmt.Errorf("click %s and wait for the next page: %w", sel, err)
	}
	return resp, nil
}

// pathOf returns the path and query of a URL.
func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.RequestURI()
}

// expectPage checks the response of a navigation: its status, and its path
// and query.
func expectPage(resp *network.Response, status int64, path *regexp.Regexp) error {
	if p := pathOf(resp.URL); resp.Status != status || !path.MatchString(p) {
		return fmt.Errorf("got HTTP %d at %s, want HTTP %d at a path matching %s", resp.Status, p, status, path)
	}
	return nil
}

// diagnose returns a short-lived context for reading the page to explain a
// failure, also when ctx has ended.
func diagnose(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// text returns the trimmed text content of the first element matching sel,
// and whether there is one.
func text(ctx context.Context, sel string) (string, bool, error) {
	s, err := eval[*string](ctx, fmt.Sprintf(`document.querySelector(%s)?.textContent.trim() ?? null`, js(sel)))
	if err != nil || s == nil {
		return "", false, err
	}
	return *s, true, nil
}

// attr returns an attribute of the first element matching sel, and whether
// the element has it.
func attr(ctx context.Context, sel, name string) (string, bool, error) {
	s, err := eval[*string](ctx, fmt.Sprintf(`document.querySelector(%s)?.getAttribute(%s) ?? null`, js(sel), js(name)))
	if err != nil || s == nil {
		return "", false, err
	}
	return *s, true, nil
}

// value returns the value of the form control matching sel.
func value(ctx context.Context, sel string) (string, error) {
	s, err := eval[*string](ctx, fmt.Sprintf(`document.querySelector(%s)?.value ?? null`, js(sel)))
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("no form control matches %s", sel)
	}
	return *s, nil
}

// waitUntil polls the JavaScript predicate until it is true or ctx ends; what
// describes it for the error.
func waitUntil(ctx context.Context, what, predicate string) error {
	timeout := stepTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d) - 500*time.Millisecond
	}
	if timeout <= 0 {
		return fmt.Errorf("no time left to wait for %s", what)
	}
	start := time.Now()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if errors.Is(err, chromedp.ErrPollingTimeout) {
		return fmt.Errorf("waited %s for %s", time.Since(start).Round(time.Millisecond), what)
	}
	if err != nil {
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// The request page.

// liveWatch installs, right after the request page loaded, a marker that a
// reload would lose and an observer that records each state the live
// fragment shows. It returns the state shown at that moment.
func liveWatch(ctx context.Context) (string, error) {
	return eval[string](ctx, `(() => {
		window.__marker = 1;
		const read = () => (document.querySelector('[data-testid=state]')?.textContent ?? '').trim();
		window.__states = [read()];
		window.__lastChange = performance.now();
		new MutationObserver(() => {
			window.__lastChange = performance.now();
			const s = read();
			if (s && s !== window.__states[window.__states.length - 1]) window.__states.push(s);
		}).observe(document.getElementById('live'), {childList: true, subtree: true, characterData: true});
		return window.__states[0];
	})()`)
}

// liveSeen returns the states the observer of liveWatch recorded, and
// whether the marker is still there (the page was not reloaded).
func liveSeen(ctx context.Context) ([]string, bool, error) {
	marker, err := eval[int](ctx, `window.__marker ?? 0`)
	if err != nil {
		return nil, false, err
	}
	states, err := eval[[]string](ctx, `window.__states ?? []`)
	return states, marker == 1, err
}

// settle waits until the live fragment has had no request in flight and no
// change for a moment, so that a click does not land while htmx swaps the
// buttons (or the rows above them) under the pointer.
func settle(ctx context.Context) error {
	return waitUntil(ctx, "the live fragment to settle",
		`!document.getElementById('live').classList.contains('htmx-request') && performance.now() - (window.__lastChange ?? 0) > 300`)
}

// waitState waits until the page shows the request in state want.
func waitState(ctx context.Context, want string) error {
	err := waitUntil(ctx, fmt.Sprintf("the state to read %q", want),
		fmt.Sprintf(`(document.querySelector('[data-testid=state]')?.textContent ?? '').trim() === %s`, js(want)))
	if err == nil {
		return nil
	}
	// Say what the page shows instead.
	rctx, cancel := diagnose(ctx)
	defer cancel()
	state, _, _ := text(rctx, "[data-testid=state]")
	reason, _, _ := text(rctx, "[data-testid=state-reason]")
	return fmt.Errorf("%w; the page shows state %q (reason %q)", err, state, reason)
}

// ---------------------------------------------------------------------------
// Accessibility.

type axeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target  []any  `json:"target"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// checkA11y injects axe-core into the current page and runs it. Serious and
// critical violations fail the test (the journey goes on, so that every page
// is checked); lesser ones are logged.
func (j *journey) checkA11y(ctx context.Context, pageName string) error {
	// The page's CSP forbids eval, but not the DevTools protocol's own
	// evaluation, so the source goes in as one expression.
	loaded, err := eval[bool](ctx, `typeof axe === 'object'`)
	if err == nil && !loaded {
		loaded, err = eval[bool](ctx, axeSource+"\n;typeof axe === 'object'")
	}
	if err != nil || !loaded {
		return fmt.Errorf("inject axe-core (loaded %v): %v", loaded, err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary})),
	}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("run axe-core: %w", err)
	}
	var violations []axeViolation
	if err := json.Unmarshal([]byte(raw), &violations); err != nil {
		return fmt.Errorf("read axe-core's result: %w", err)
	}
	var bad, minor strings.Builder
	for _, v := range violations {
		w := &minor
		if why, known := j.knownA11y[v.ID]; known {
			fmt.Fprintf(w, "\n  KNOWN (%s):", why)
		} else if v.Impact == "serious" || v.Impact == "critical" {
			w = &bad
		}
		fmt.Fprintf(w, "\n  [%s] %s: %s (%s)", v.Impact, v.ID, v.Help, v.HelpURL)
		for _, n := range v.Nodes {
			fmt.Fprintf(w, "\n      at %s", axeTarget(n.Target))
			if n.Summary != "" {
				fmt.Fprintf(w, "\n         %s", strings.ReplaceAll(n.Summary, "\n", "\n         "))
			}
		}
	}
	if minor.Len() > 0 {
		j.t.Logf("axe-core on the %s page, moderate and minor findings:%s", pageName, minor.String())
	}
	if bad.Len() > 0 {
		j.t.Errorf("axe-core on the %s page: serious or critical accessibility violations:%s", pageName, bad.String())
	}
	return nil
}

// axeTarget prints axe's node target: a selector, or one per nested frame or
// shadow root.
func axeTarget(target []any) string {
	parts := make([]string, len(target))
	for i, t := range target {
		if s, ok := t.(string); ok {
			parts[i] = s
		} else {
			parts[i] = fmt.Sprint(t)
		}
	}
	return strings.Join(parts, " >>> ")
}

// ---------------------------------------------------------------------------
// Test data.

// newSSHKey returns a fresh ed25519 public key in authorized_keys form.
func newSSHKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + " e2e@paddock"
}
