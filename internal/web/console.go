package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"paddock/internal/provision"
	"paddock/internal/store"
)

// This file bridges a browser's websocket to a VM's console (its screen
// over VNC, or its serial line) through the cluster's subresource API:
// the browser never talks to the cluster, and Paddock decides who may
// connect before the connection is upgraded.

// Defaults of the console settings in Config.
const (
	DefaultConsoleIdleTimeout = 15 * time.Minute
	DefaultConsolePing        = 20 * time.Second
	DefaultConsoleRecheck     = 15 * time.Second
)

// Close codes the console pages explain to the user (RFC 6455 leaves
// 4000-4999 to applications).
const (
	closeNotRunning  = 4001 // no running instance to connect to
	closeTakenOver   = 4002 // another session opened the same console
	closeAccessEnded = 4003 // signed out everywhere, disabled, or lost access
	closeIdle        = 4004 // no input for the idle timeout
	closeLost        = 4005 // the cluster side ended or failed
	closeUnavailable = 4006 // the cluster refused or failed to open it
	closeShutdown    = 4007 // Paddock is stopping
)

// consoleKinds maps the URL's {kind} to the cluster's console.
var consoleKinds = map[string]provision.ConsoleKind{
	"vnc":    provision.ConsoleVNC,
	"serial": provision.ConsoleSerial,
}

// consoleKey names one console of one VM; a second session on it takes
// the first one over, as virt-handler does with VNC.
type consoleKey struct {
	requestID int64
	vm        string
	kind      provision.ConsoleKind
}

// consoleSession is an open console, as the registry knows it.
type consoleSession struct {
	key    consoleKey
	userID int64
	end    func(code int, reason string)
}

// consoles is the registry of the open console sessions of this process.
type consoles struct {
	mu    sync.Mutex
	open  map[consoleKey]*consoleSession
	all   map[*consoleSession]struct{}
	gauge *prometheus.GaugeVec
}

func newConsoles(reg *prometheus.Registry) *consoles {
	c := &consoles{
		open: map[consoleKey]*consoleSession{}, all: map[*consoleSession]struct{}{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "paddock", Name: "console_sessions_open",
			Help: "Console sessions open now, by kind (vnc, console).",
		}, []string{"kind"}),
	}
	for _, k := range consoleKinds {
		c.gauge.WithLabelValues(string(k)) // both series exist from the start, at 0
	}
	reg.MustRegister(c.gauge)
	return c
}

// add registers cs, taking over (ending) the session open on the same
// console, if any.
func (c *consoles) add(cs *consoleSession, by string) {
	c.mu.Lock()
	prev := c.open[cs.key]
	c.open[cs.key] = cs
	c.all[cs] = struct{}{}
	c.mu.Unlock()
	c.gauge.WithLabelValues(string(cs.key.kind)).Inc()
	if prev != nil {
		prev.end(closeTakenOver, "The console was taken over by another session ("+by+").")
	}
}

func (c *consoles) remove(cs *consoleSession) {
	c.mu.Lock()
	if c.open[cs.key] == cs {
		delete(c.open, cs.key)
	}
	_, ok := c.all[cs]
	delete(c.all, cs)
	c.mu.Unlock()
	if ok {
		c.gauge.WithLabelValues(string(cs.key.kind)).Dec()
	}
}

// endUser ends every console session of a user (signed out everywhere).
func (c *consoles) endUser(userID int64, reason string) {
	c.mu.Lock()
	var ends []*consoleSession
	for cs := range c.all {
		if cs.userID == userID {
			ends = append(ends, cs)
		}
	}
	c.mu.Unlock()
	for _, cs := range ends {
		cs.end(closeAccessEnded, reason)
	}
}

// endAll ends every session (Paddock is shutting down).
func (c *consoles) endAll() {
	c.mu.Lock()
	var ends []*consoleSession
	for cs := range c.all {
		ends = append(ends, cs)
	}
	c.mu.Unlock()
	for _, cs := range ends {
		cs.end(closeShutdown, "Paddock is restarting. Reconnect in a moment.")
	}
}

// canConsole reports whether u may open the consoles of r's VMs: whoever
// may act on them (the owning team and the platform team). Managers read,
// and a console is not reading: it types into the VM.
func canConsole(u store.User, r store.Request) bool { return canAct(u, r) }

// consoleTarget is the VM a console URL names: the request's VM, or for a
// pool the member in ?vm=.
type consoleTarget struct {
	req       store.Request
	kind      provision.ConsoleKind
	urlKind   string
	namespace string
	vm        string
	running   bool
}

// consoleTarget loads and authorizes the console a URL names. Someone who
// may not see the request gets 404, someone who may see it but not use its
// console 403; a VM that is not (or no longer) Paddock's record gets 404.
func (s *Server) consoleTarget(r *http.Request) (consoleTarget, error) {
	kind, ok := consoleKinds[chi.URLParam(r, "kind")]
	if !ok {
		return consoleTarget{}, errNotFound
	}
	t, err := s.consoleVM(r)
	if err != nil {
		return consoleTarget{}, err
	}
	t.kind, t.urlKind = kind, chi.URLParam(r, "kind")
	return t, nil
}

// consoleVM loads and authorizes the VM a console or screenshot URL names,
// as consoleTarget does, without a console kind.
func (s *Server) consoleVM(r *http.Request) (consoleTarget, error) {
	req, err := s.visibleRequest(r)
	if err != nil {
		return consoleTarget{}, err
	}
	u, _ := userFrom(r.Context())
	if !canConsole(u, req) {
		return consoleTarget{}, errStatus(http.StatusForbidden, "Only the VM's team and the platform team may open its console.")
	}
	if req.VM == nil || req.VM.Name == "" || req.State == store.StateDeleted {
		return consoleTarget{}, errNotFound
	}
	t := consoleTarget{req: req, namespace: req.VM.Namespace, vm: req.VM.Name, running: req.VM.Status == "Running"}
	if req.Pool {
		member := r.URL.Query().Get("vm")
		t.vm, t.running = "", false
		for _, m := range req.Members {
			if m.Name == member {
				t.vm, t.running = m.Name, m.Status == "Running"
			}
		}
		if t.vm == "" {
			return consoleTarget{}, errNotFound
		}
	}
	return t, nil
}

// sameOrigin reports whether a websocket handshake comes from a page of
// this site: browsers always send Origin on one, and a page elsewhere must
// not open a console with the user's cookie (cross-site websocket hijacking).
func sameOrigin(r *http.Request) bool {
	o, err := url.Parse(r.Header.Get("Origin"))
	if err != nil || o.Host == "" {
		return false
	}
	return o.Host == r.Host
}

// consoleSocket bridges a websocket to a VM's console. Everything that can
// refuse is decided before the upgrade; after it, a failure closes the
// websocket with a code and a sentence the page shows.
func (s *Server) consoleSocket(w http.ResponseWriter, r *http.Request) error {
	t, err := s.consoleTarget(r)
	if err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return errStatus(http.StatusBadRequest, "This address is for the console page's websocket.")
	}
	if !sameOrigin(r) {
		return errStatus(http.StatusForbidden, "A console may only be opened from Paddock's own pages.")
	}
	if s.cluster == nil {
		return errStatus(http.StatusServiceUnavailable, "No cluster is connected, so there is no console.")
	}
	u, _ := userFrom(r.Context())
	token := s.sessions.Token(r.Context())
	up := websocket.Upgrader{
		// Origin is checked above, before anything else.
		CheckOrigin:     func(*http.Request) bool { return true },
		ReadBufferSize:  32 << 10,
		WriteBufferSize: 32 << 10,
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader has answered the client
	}
	// The request's context ends with the handler, but the bridge must not
	// outlive Paddock's own shutdown either: it ends via consoles.endAll.
	s.bridgeConsole(context.WithoutCancel(r.Context()), ws, u, token, t)
	return nil
}

// bridge is one console session: a websocket on one side, the cluster's
// console connection on the other.
type bridge struct {
	ws       *websocket.Conn
	writeMu  sync.Mutex
	endOnce  sync.Once
	ended    chan struct{}
	code     int
	reason   string
	toVM     atomic.Int64
	fromVM   atomic.Int64
	lastUser atomic.Int64 // unix nanoseconds of the user's last input
}

// end closes the websocket with code and reason (the first call wins).
func (b *bridge) end(code int, reason string) {
	b.endOnce.Do(func() {
		b.code, b.reason = code, reason
		b.writeMu.Lock()
		_ = b.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		b.writeMu.Unlock()
		close(b.ended)
		_ = b.ws.Close()
	})
}

func (s *Server) bridgeConsole(ctx context.Context, ws *websocket.Conn, u store.User, token string, t consoleTarget) {
	started := time.Now()
	b := &bridge{ws: ws, ended: make(chan struct{})}
	b.lastUser.Store(started.UnixNano())
	cs := &consoleSession{key: consoleKey{t.req.ID, t.vm, t.kind}, userID: u.ID, end: b.end}
	s.consoles.add(cs, u.Login)
	defer s.consoles.remove(cs)
	defer func() { s.auditConsole(ctx, u, t, started, b) }()

	conn, err := s.cluster.OpenConsole(ctx, t.namespace, t.vm, t.kind)
	switch {
	case errors.Is(err, provision.ErrNotRunning):
		b.end(closeNotRunning, "The VM is not running yet. Start it, or wait until it runs, then reconnect.")
		return
	case err != nil:
		s.log.ErrorContext(ctx, "open console", "request", t.req.ID, "vm", t.namespace+"/"+t.vm, "kind", t.kind, "err", err)
		b.end(closeUnavailable, "The cluster did not open the console. Try again in a moment.")
		return
	}
	defer conn.Close()

	// Cluster to browser.
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				b.writeMu.Lock()
				_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				werr := ws.WriteMessage(websocket.BinaryMessage, buf[:n])
				b.writeMu.Unlock()
				if werr != nil {
					b.end(websocket.CloseGoingAway, "")
					return
				}
				b.fromVM.Add(int64(n))
			}
			if err != nil {
				b.end(closeLost, "The connection to the VM's console was lost (the VM stopped, or the cluster closed it). Reconnect to try again.")
				return
			}
		}
	}()

	// Browser to cluster. A pong or any message keeps the session alive;
	// only messages count as the user's activity.
	ping := s.cfg.ConsolePing
	_ = ws.SetReadDeadline(time.Now().Add(2 * ping))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(2 * ping)) })
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				b.end(websocket.CloseNormalClosure, "")
				return
			}
			_ = ws.SetReadDeadline(time.Now().Add(2 * ping))
			b.lastUser.Store(time.Now().UnixNano())
			if _, err := conn.Write(msg); err != nil {
				b.end(closeLost, "The connection to the VM's console was lost (the VM stopped, or the cluster closed it). Reconnect to try again.")
				return
			}
			b.toVM.Add(int64(len(msg)))
		}
	}()

	pinger := time.NewTicker(ping)
	defer pinger.Stop()
	recheck := time.NewTicker(s.cfg.ConsoleRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-b.ended:
			return
		case <-pinger.C:
			if time.Since(time.Unix(0, b.lastUser.Load())) > s.cfg.ConsoleIdleTimeout {
				b.end(closeIdle, "The console was closed after "+s.cfg.ConsoleIdleTimeout.String()+" without input. Reconnect to go on.")
				continue
			}
			b.writeMu.Lock()
			err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second))
			b.writeMu.Unlock()
			if err != nil {
				b.end(websocket.CloseGoingAway, "")
			}
		case <-recheck.C:
			if reason := s.consoleAccessEnded(ctx, u, token, t.req.ID); reason != "" {
				b.end(closeAccessEnded, reason)
			}
		}
	}
}

// consoleAccessEnded checks, during a session, that its user is still
// signed in on this browser (not signed out everywhere, not disabled) and
// may still use the VM's console; it returns why not, or "". A database
// that cannot be reached does not end a session.
func (s *Server) consoleAccessEnded(ctx context.Context, u store.User, token string, requestID int64) string {
	cur, err := s.store.UserBySession(ctx, sessionKey(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && cur.ID != u.ID) {
		return "You were signed out, so the console was closed."
	}
	if err != nil {
		return ""
	}
	req, err := s.store.Request(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !canConsole(cur, req)) {
		return "You may no longer use this VM's console."
	}
	return ""
}

func (s *Server) auditConsole(ctx context.Context, u store.User, t consoleTarget, started time.Time, b *bridge) {
	details := map[string]any{
		"vm": t.namespace + "/" + t.vm, "console": string(t.kind),
		"started_at": started.UTC().Format(time.RFC3339Nano), "ended_at": time.Now().UTC().Format(time.RFC3339Nano),
		"bytes_to_vm": b.toVM.Load(), "bytes_from_vm": b.fromVM.Load(),
		"close_code": b.code,
	}
	if b.reason != "" {
		details["close_reason"] = b.reason
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.store.Audit(actx, nil, store.UserActor(u), store.AuditConsoleSession, store.RequestTarget(t.req.ID), details); err != nil {
		s.log.ErrorContext(ctx, "audit console session", "request", t.req.ID, "err", err)
	}
}

// styleNonce is a fresh nonce for the console pages' style-src: xterm.js
// styles its terminal with <style> elements it makes, which a policy
// without 'unsafe-inline' refuses unless they carry the page's nonce.
func styleNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// consolePage renders the page around a console: noVNC for the screen,
// xterm.js for the serial line.
func (s *Server) consolePage(w http.ResponseWriter, r *http.Request) error {
	t, err := s.consoleTarget(r)
	if err != nil {
		return err
	}
	id := strconv.FormatInt(t.req.ID, 10)
	socket := "/requests/" + id + "/console/" + t.urlKind + "/ws"
	if t.req.Pool {
		socket += "?vm=" + url.QueryEscape(t.vm)
	}
	v := consoleView{
		Base: s.viewBase(r, "Console of "+t.vm), Kind: t.urlKind, VM: t.vm, Socket: socket,
		Back: "/requests/" + id, Running: t.running, Status: vmStatusOf(t),
	}
	if t.kind == provision.ConsoleSerial {
		v.Nonce = styleNonce()
		w.Header().Set("Content-Security-Policy", cspWithStyleNonce(v.Nonce))
	}
	w.Header().Set("Cache-Control", "no-store")
	return render(w, r, http.StatusOK, consoleScreen(v))
}

func vmStatusOf(t consoleTarget) string {
	if t.req.Pool {
		for _, m := range t.req.Members {
			if m.Name == t.vm {
				return m.Status
			}
		}
	}
	return t.req.VM.Status
}

// cspWithStyleNonce is the site's policy with the console page's style
// nonce added to style-src; scripts stay 'self' only.
func cspWithStyleNonce(nonce string) string {
	return strings.Replace(contentSecurityPolicy, "style-src 'self'", "style-src 'self' 'nonce-"+nonce+"'", 1)
}

// orDash is s, or an em dash when s is empty.
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
