package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/store"
)

// Hub fans PostgreSQL notifications about changed requests out to the open
// pages that show them. Notifications cross replicas, so a change made by
// any process reaches every browser.
type Hub struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
	// closing is closed at shutdown, ending every open stream so that the
	// server's graceful shutdown does not wait for browsers to leave.
	closing   chan struct{}
	closeOnce sync.Once
}

// Close ends every open event stream.
func (h *Hub) Close() { h.closeOnce.Do(func() { close(h.closing) }) }

// NewHub returns a hub; Run starts listening.
func NewHub(pool *pgxpool.Pool, log *slog.Logger) *Hub {
	return &Hub{pool: pool, log: log, subs: map[int64]map[chan struct{}]struct{}{}, closing: make(chan struct{})}
}

// Subscribe returns a channel that receives (coalesced) signals whenever
// request id changes, and a function to stop.
func (h *Hub) Subscribe(id int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan struct{}]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

func (h *Hub) publish(id int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending; the page will reload once
		}
	}
}

// publishAll wakes every subscriber, after a reconnect in which
// notifications may have been missed.
func (h *Hub) publishAll() {
	h.mu.Lock()
	ids := make([]int64, 0, len(h.subs))
	for id := range h.subs {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		h.publish(id)
	}
}

// Run listens until ctx ends, reconnecting when the database goes away.
func (h *Hub) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := h.listen(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("live updates: listener lost, reconnecting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (h *Hub) listen(ctx context.Context) error {
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	// The connection will run LISTEN: take it out of the pool for good.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h.publishAll()
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			h.publish(id)
		}
	}
}

// stream is a server-sent event stream that says "changed" whenever the
// request changes; the page then fetches the fresh fragment.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return errStatus(http.StatusInternalServerError, "streaming unsupported")
	}
	ch, stop := s.hub.Subscribe(req.ID)
	defer stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	// Tell the browser how soon to reconnect, then catch up on anything
	// missed between the page load and this subscription.
	fmt.Fprint(w, "retry: 2000\n\nevent: changed\ndata: {}\n\n")
	flusher.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	rc := http.NewResponseController(w)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.hub.closing:
			return nil
		case <-ch:
			fmt.Fprint(w, "event: changed\ndata: {}\n\n")
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		}
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}
