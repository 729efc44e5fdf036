package web_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/guestconsole"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/web"
)

// consoleEnv is a web server on the simulated cluster, with a running
// request of team payments whose instance runs there.
type consoleEnv struct {
	*env
	cluster *provision.Cluster
	req     store.Request
}

func setupConsole(t *testing.T, cfg web.Config) *consoleEnv {
	e := setup(t, web.Config{DevSignIn: true})
	cluster, _, err := provision.NewSimulatedCluster(context.Background(), e.st, slog.New(slog.DiscardHandler), 0)
	if err != nil {
		t.Fatal(err)
	}
	ce := setupConsoleOn(e, cfg, cluster)
	ce.runInstance(ce.req.Namespace, ce.req.Name)
	return ce
}

// setupConsoleOn is setupConsole on cluster, where the caller makes the
// request's instance run.
func setupConsoleOn(e *env, cfg web.Config, cluster *provision.Cluster) *consoleEnv {
	t := e.t
	cfg.DevSignIn = true
	e.web = web.New(cfg, e.st, cluster, nil, slog.New(slog.NewTextHandler(e.logs, nil)))
	srv := httptest.NewServer(e.web.Handler())
	t.Cleanup(srv.Close)
	e.srv, e.url = srv, srv.URL
	return &consoleEnv{env: e, cluster: cluster, req: e.cattleRunning("console-vm")}
}

// runInstance creates a running instance in the simulated cluster.
func (e *consoleEnv) runInstance(ns, name string) {
	e.t.Helper()
	vmi := &virtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: virtv1.VirtualMachineInstanceStatus{Phase: virtv1.Running,
			Interfaces: []virtv1.VirtualMachineInstanceNetworkInterface{{IP: "10.0.0.7"}}}}
	if _, err := e.cluster.Virt.KubevirtV1().VirtualMachineInstances(ns).Create(context.Background(), vmi, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// dial opens the console websocket of path as login (signed in through the
// dev sign-in, with its cookie), from origin.
func (e *consoleEnv) dial(login, path, origin string) (*websocket.Conn, *http.Response, error) {
	e.t.Helper()
	c := e.browser(login)
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{Jar: c.Jar, HandshakeTimeout: 10 * time.Second}
	return d.Dial(u, h)
}

func (e *consoleEnv) socket(kind string) string {
	return "/requests/" + strconv.FormatInt(e.req.ID, 10) + "/console/" + kind + "/ws"
}

// wsConn reads and writes a console websocket as a byte stream.
type wsConn struct {
	ws  *websocket.Conn
	buf []byte
}

func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return 0, err
		}
		c.buf = msg
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *wsConn) Write(p []byte) (int, error) {
	return len(p), c.ws.WriteMessage(websocket.BinaryMessage, p)
}

// closeOf waits for the close frame of ws and returns its code and text.
func closeOf(t *testing.T, ws *websocket.Conn) (int, string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		if err != nil {
			t.Fatalf("waiting for a close frame: %v", err)
		}
	}
}

func TestConsoleBridgesVNCOfTheSimulatedCluster(t *testing.T) {
	e := setupConsole(t, web.Config{})
	ws, resp, err := e.dial("developer", e.socket("vnc"), e.srv.URL)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	v, err := guestconsole.Dial(&wsConn{ws: ws})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != e.req.Name {
		t.Errorf("desktop name %q, want %q", v.Name, e.req.Name)
	}
	px, err := v.Frame(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if px.R != 0x1b || px.G != 0x26 || px.B != 0x3b {
		t.Errorf("background pixel %v, want the simulated screen's #1b263b", px)
	}
	if got := e.gauge(t, "vnc"); got != "1" {
		t.Errorf("open vnc sessions while one is open: %s", got)
	}
	ws.Close()
	waitFor(t, func() bool { return e.auditCount(store.AuditConsoleSession) == 1 })
	waitFor(t, func() bool { return e.gauge(t, "vnc") == "0" })
	var details map[string]any
	var actor, target string
	if err := e.st.Pool().QueryRow(context.Background(), `SELECT actor, target, details FROM audit_log WHERE action = $1`,
		store.AuditConsoleSession).Scan(&actor, &target, &details); err != nil {
		t.Fatal(err)
	}
	if actor != "developer" || target != store.RequestTarget(e.req.ID) || details["vm"] != e.req.Namespace+"/"+e.req.Name ||
		details["console"] != "vnc" || details["started_at"] == nil || details["ended_at"] == nil {
		t.Errorf("audit entry %s %s %v", actor, target, details)
	}
	if to, _ := details["bytes_to_vm"].(float64); to < 12 {
		t.Errorf("bytes to the VM %v: the handshake alone is more", details["bytes_to_vm"])
	}
	if from, _ := details["bytes_from_vm"].(float64); from < 640*400*4 {
		t.Errorf("bytes from the VM %v: one full frame is more", details["bytes_from_vm"])
	}
}

func TestSerialConsoleEchoes(t *testing.T) {
	e := setupConsole(t, web.Config{})
	ws, _, err := e.dial("platform", e.socket("serial"), e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &wsConn{ws: ws}
	readUntil(t, c, e.req.Name+" login: ")
	if _, err := c.Write([]byte("dev\r")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, "dev\r\nPassword: ")
}

func readUntil(t *testing.T, c *wsConn, want string) {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := guestconsole.ReadUntil(c, want); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleRefusedBeforeUpgrade: who may not use a console is answered
// with a plain HTTP status, never a websocket: another team's developer
// cannot tell the VM exists, a manager reads but may not type into VMs, a
// page of another site may not use the user's cookie.
func TestConsoleRefusedBeforeUpgrade(t *testing.T) {
	e := setupConsole(t, web.Config{})
	for _, tc := range []struct {
		login, origin string
		want          int
	}{
		{"outsider", e.srv.URL, http.StatusNotFound},
		{"manager", e.srv.URL, http.StatusForbidden},
		{"developer", "https://evil.example", http.StatusForbidden},
		{"developer", "", http.StatusForbidden},
	} {
		ws, resp, err := e.dial(tc.login, e.socket("vnc"), tc.origin)
		if err == nil {
			ws.Close()
			t.Errorf("%s from %q: upgraded, want %d", tc.login, tc.origin, tc.want)
			continue
		}
		if resp == nil || resp.StatusCode != tc.want || resp.Header.Get("Upgrade") != "" {
			t.Errorf("%s from %q: %v %v, want %d without an upgrade", tc.login, tc.origin, resp, err, tc.want)
		}
	}
	if n := e.auditCount(store.AuditConsoleSession); n != 0 {
		t.Errorf("refused attempts wrote %d console sessions", n)
	}
}

func TestConsoleEnds(t *testing.T) {
	e := setupConsole(t, web.Config{ConsoleRecheck: 100 * time.Millisecond, ConsolePing: 100 * time.Millisecond, ConsoleIdleTimeout: time.Hour})
	t.Run("taken over", func(t *testing.T) {
		first, _, err := e.dial("developer", e.socket("serial"), e.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		readUntil(t, &wsConn{ws: first}, "login: ")
		second, _, err := e.dial("platform", e.socket("serial"), e.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		if code, text := closeOf(t, first); code != 4002 || !strings.Contains(text, "taken over") {
			t.Errorf("first session closed with %d %q, want 4002 taken over", code, text)
		}
	})
	t.Run("signed out everywhere", func(t *testing.T) {
		c := e.browser("developer")
		ws, _, err := (&websocket.Dialer{Jar: c.Jar}).Dial("ws"+strings.TrimPrefix(e.srv.URL, "http")+e.socket("vnc"),
			http.Header{"Origin": {e.srv.URL}})
		if err != nil {
			t.Fatal(err)
		}
		// Another browser of the same user signs out everywhere.
		other := e.browser("developer")
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/signout/everywhere", nil)
		req.Header.Set("Origin", e.srv.URL)
		resp, err := other.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if code, text := closeOf(t, ws); code != 4003 || !strings.Contains(text, "signed out") {
			t.Errorf("closed with %d %q, want 4003 signed out", code, text)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		ws, _, err := e.dial("developer", e.socket("vnc"), e.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.DisableUser(context.Background(), store.Actor{Name: "test"}, "developer", "left"); err != nil {
			t.Fatal(err)
		}
		defer e.st.EnableUser(context.Background(), store.Actor{Name: "test"}, "developer")
		if code, _ := closeOf(t, ws); code != 4003 {
			t.Errorf("closed with %d, want 4003", code)
		}
	})
	t.Run("VM stopped", func(t *testing.T) {
		ws, _, err := e.dial("platform", e.socket("serial"), e.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		readUntil(t, &wsConn{ws: ws}, "login: ")
		if err := e.cluster.Virt.KubevirtV1().VirtualMachineInstances(e.req.Namespace).Delete(context.Background(), e.req.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if code, text := closeOf(t, ws); code != 4005 || !strings.Contains(text, "lost") {
			t.Errorf("closed with %d %q, want 4005 lost", code, text)
		}
		ws, _, err = e.dial("platform", e.socket("serial"), e.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if code, text := closeOf(t, ws); code != 4001 || !strings.Contains(text, "not running") {
			t.Errorf("reconnect closed with %d %q, want 4001 not running", code, text)
		}
	})
}

// gauge reads paddock_console_sessions_open{kind} from /metrics.
func (e *consoleEnv) gauge(t *testing.T, kind string) string {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	prefix := `paddock_console_sessions_open{kind="` + map[string]string{"vnc": "vnc", "serial": "console"}[kind] + `"} `
	for _, line := range strings.Split(body(t, resp), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return "missing"
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	waitUpTo(t, 10*time.Second, "condition", cond)
}

// waitUpTo polls cond until it holds, failing the test, which names what,
// after limit.
func waitUpTo(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s not met in %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsoleLinks: the request page offers the consoles to who may use
// them, and the console page to them only.
func TestConsoleLinks(t *testing.T) {
	e := setupConsole(t, web.Config{})
	page := "/requests/" + strconv.FormatInt(e.req.ID, 10)
	for _, tc := range []struct {
		login string
		links bool
		page  int
	}{
		{"developer", true, http.StatusOK},
		{"platform", true, http.StatusOK},
		{"manager", false, http.StatusForbidden},
		{"outsider", false, http.StatusNotFound},
	} {
		c := e.browser(tc.login)
		_, b := e.getAs(c, page, nil)
		if got := strings.Contains(b, `data-testid="open-console"`) && strings.Contains(b, `data-testid="open-serial"`); got != tc.links {
			t.Errorf("%s: console links shown %v, want %v", tc.login, got, tc.links)
		}
		for _, kind := range []string{"vnc", "serial"} {
			code, b := e.getAs(c, page+"/console/"+kind, nil)
			if code != tc.page {
				t.Errorf("%s: console page %s: %d, want %d", tc.login, kind, code, tc.page)
			}
			if code == http.StatusOK && !strings.Contains(b, `data-socket="`+page+`/console/`+kind+`/ws"`) {
				t.Errorf("%s: console page %s has no socket: %s", tc.login, kind, b)
			}
		}
	}
	pool := e.poolRunning("console-pool", 2)
	_, b := e.getAs(e.browser("developer"), "/requests/"+strconv.FormatInt(pool.ID, 10), nil)
	if strings.Count(b, `data-testid="member-console"`) != 2 {
		t.Errorf("pool page: want a console link per running member: %s", b)
	}
	code, _ := e.getAs(e.browser("developer"), "/requests/"+strconv.FormatInt(pool.ID, 10)+"/console/vnc?vm=console-pool-1", nil)
	if code != http.StatusOK {
		t.Errorf("console page of a pool member: %d", code)
	}
	code, _ = e.getAs(e.browser("developer"), "/requests/"+strconv.FormatInt(pool.ID, 10)+"/console/vnc?vm=someone-else", nil)
	if code != http.StatusNotFound {
		t.Errorf("console page of a VM not in the pool: %d, want 404", code)
	}
}

func TestConsoleIdleTimeout(t *testing.T) {
	e := setupConsole(t, web.Config{ConsoleIdleTimeout: 300 * time.Millisecond, ConsolePing: 100 * time.Millisecond})
	ws, _, err := e.dial("developer", e.socket("serial"), e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if code, text := closeOf(t, ws); code != 4004 || !strings.Contains(text, "without input") {
		t.Errorf("closed with %d %q, want 4004 without input", code, text)
	}
}

// TestConsolePagePolicy: the serial console page admits xterm.js's <style>
// elements by a fresh nonce, never by 'unsafe-inline'; scripts stay 'self'.
func TestConsolePagePolicy(t *testing.T) {
	e := setupConsole(t, web.Config{})
	c := e.browser("developer")
	page := e.srv.URL + "/requests/" + strconv.FormatInt(e.req.ID, 10) + "/console/"
	var nonces []string
	for range 2 {
		resp, err := c.Get(page + "serial")
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		csp := resp.Header.Get("Content-Security-Policy")
		i := strings.Index(csp, "'nonce-")
		if i < 0 || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self';") {
			t.Fatalf("serial console policy %q", csp)
		}
		nonce := strings.TrimSuffix(strings.Fields(csp[i+len("'nonce-"):])[0], "';")
		if !strings.Contains(b, `content="`+nonce+`"`) {
			t.Errorf("the page does not carry the policy's nonce %q", nonce)
		}
		nonces = append(nonces, nonce)
	}
	if nonces[0] == nonces[1] {
		t.Errorf("two responses share the nonce %q", nonces[0])
	}
	resp, err := c.Get(page + "vnc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "nonce") || strings.Contains(csp, "unsafe") {
		t.Errorf("VNC console policy %q: noVNC needs neither", csp)
	}
}
