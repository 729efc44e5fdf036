package web

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
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
