package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"

	"paddock/internal/store"
)

// touchStore spares the database a write on every page view. With an idle
// timeout, scs commits each request's session to push its expiry forward,
// even when nothing in it changed: one INSERT … ON CONFLICT UPDATE, and a
// WAL flush, per page. touchStore writes through whenever the data differ
// from what this process last wrote for the token, and otherwise only when
// the expiry moved by at least slack since that write. A session therefore
// times out at most slack earlier than the idle timeout says, never later.
//
// It remembers one digest and expiry per token this process wrote, dropping
// them once expired; another replica's writes only make it write again.
type touchStore struct {
	scs.Store
	slack time.Duration

	mu      sync.Mutex
	written map[string]written
	pruned  time.Time
}

type written struct {
	sum    [sha256.Size]byte
	expiry time.Time
}

func newTouchStore(s scs.Store, slack time.Duration) *touchStore {
	return &touchStore{Store: s, slack: slack, written: map[string]written{}}
}

func (t *touchStore) Commit(token string, b []byte, expiry time.Time) error {
	sum := sha256.Sum256(b)
	now := time.Now()
	t.mu.Lock()
	w, ok := t.written[token]
	t.mu.Unlock()
	if ok && w.sum == sum && now.Before(w.expiry) && expiry.Sub(w.expiry) < t.slack {
		return nil
	}
	if err := t.Store.Commit(token, b, expiry); err != nil {
		t.forget(token)
		return err
	}
	t.mu.Lock()
	t.written[token] = written{sum: sum, expiry: expiry}
	if now.Sub(t.pruned) > time.Minute {
		for k, w := range t.written {
			if !now.Before(w.expiry) {
				delete(t.written, k)
			}
		}
		t.pruned = now
	}
	t.mu.Unlock()
	return nil
}

func (t *touchStore) Delete(token string) error {
	t.forget(token)
	return t.Store.Delete(token)
}

func (t *touchStore) forget(token string) {
	t.mu.Lock()
	delete(t.written, token)
	t.mu.Unlock()
}

// pageSessionStore reads a page's session, the user it is mapped to, the
// catalog version and the navigation's count of approvals in one query
// (store.LoadPageSession), when the request carries a preload
// (preloadSession): withUser then takes the user from it instead of asking
// the database again, and the page's lists may come from memory
// (store.WithCatalogVersion). Everything else goes to the touchStore.
type pageSessionStore struct {
	*touchStore
	st *store.Store
}

// preload is what pageSessionStore read for one request's session.
type preload struct {
	key     string // the session's key in the store (sessionKey)
	done    bool
	user    *store.User
	catalog int64
	waiting *int // the user's approvals waiting, for those who see approvals
}

type preloadKey struct{}

// preloadSession gives the request a preload for pageSessionStore to fill.
func preloadSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), preloadKey{}, &preload{})))
	})
}

// preloadOf returns what was read for the session whose key is key, if it
// was read with the user (a session renewed since, by a sign-in, was not).
func preloadOf(ctx context.Context, key string) (*preload, bool) {
	p, _ := ctx.Value(preloadKey{}).(*preload)
	return p, p != nil && p.done && p.key == key
}

func (s pageSessionStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	p, _ := ctx.Value(preloadKey{}).(*preload)
	if p == nil {
		return s.Find(token)
	}
	ps, err := s.st.LoadPageSession(ctx, token)
	if err != nil {
		return nil, false, err
	}
	*p = preload{key: token, done: true, user: ps.User, catalog: ps.CatalogVersion, waiting: ps.ApprovalsWaiting}
	return ps.Data, ps.Found, nil
}

func (s pageSessionStore) CommitCtx(_ context.Context, token string, b []byte, expiry time.Time) error {
	return s.Commit(token, b, expiry)
}

func (s pageSessionStore) DeleteCtx(_ context.Context, token string) error {
	return s.Delete(token)
}

// sessionCodec writes a session as JSON that keeps each value's type,
// where scs's default, gob, builds its type information again for every
// session it reads (an eighth of the portal's CPU on the catalog page), and writes a
// map's entries in varying order, so that one save in ten of an unchanged
// session looked changed to touchStore and was written to the database.
// JSON sorts the keys. Paddock
// keeps only integers and strings in a session; any other type is refused
// when the session is saved. A session an older Paddock wrote with gob is
// still read.
type sessionCodec struct{}

// sessionJSON marks the sessions sessionCodec wrote.
var sessionJSON = []byte("paddock-session-v1:")

type encodedSession struct {
	Deadline time.Time         `json:"deadline"`
	Ints     map[string]int64  `json:"ints,omitempty"`
	Strings  map[string]string `json:"strings,omitempty"`
}

func (sessionCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	e := encodedSession{Deadline: deadline}
	for k, v := range values {
		switch v := v.(type) {
		case int64:
			if e.Ints == nil {
				e.Ints = map[string]int64{}
			}
			e.Ints[k] = v
		case string:
			if e.Strings == nil {
				e.Strings = map[string]string{}
			}
			e.Strings[k] = v
		default:
			return nil, fmt.Errorf("session value %q is a %T; sessionCodec keeps integers (int64) and strings", k, v)
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode session: %w", err)
	}
	return append(slices.Clip(sessionJSON), b...), nil
}

func (sessionCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	rest, ok := bytes.CutPrefix(b, sessionJSON)
	if !ok {
		return scs.GobCodec{}.Decode(b)
	}
	var e encodedSession
	if err := json.Unmarshal(rest, &e); err != nil {
		return time.Time{}, nil, fmt.Errorf("decode session: %w", err)
	}
	values := make(map[string]any, len(e.Ints)+len(e.Strings))
	for k, v := range e.Ints {
		values[k] = v
	}
	for k, v := range e.Strings {
		values[k] = v
	}
	return e.Deadline, values, nil
}
