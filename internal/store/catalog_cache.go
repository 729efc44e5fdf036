package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
)

// The lists nearly every page shows (templates, their names and states,
// teams) change a few times a day, and were read from the database on
// every page view. Migration 0015 keeps a count of their changes,
// catalog_version, bumped by a trigger on every statement that writes
// templates, template_versions or teams, whoever runs it. A page reads the
// count in the same query as its session (LoadPageSession) and carries it
// in its context (WithCatalogVersion); a list read with that count in the
// context comes from memory when it was last read at the same count. Each
// list query reads the count in the same statement as the rows, so a cached
// list is always the one the database held at its count. Reads without a
// count in the context (the API, background work) go to the database, as
// before, and refresh the cache.

type catalogVersionKey struct{}

// WithCatalogVersion returns ctx carrying the catalog version n, read from
// the database at the start of this request: the store's list reads may
// then answer from memory when they last read the lists at the same version.
func WithCatalogVersion(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, catalogVersionKey{}, n)
}

// CatalogVersion returns the catalog version ctx carries, if any: the
// store's lists use it, and callers that keep what they derive from the
// lists by version too.
func CatalogVersion(ctx context.Context) (int64, bool) {
	n, ok := ctx.Value(catalogVersionKey{}).(int64)
	return n, ok
}

// catalogVersionColumn is the count of catalog changes, as a column of a
// list query: read in the same statement, it is the version of the rows.
const catalogVersionColumn = `(SELECT n FROM catalog_version)`

// versioned holds one list as the database held it at one catalog version.
type versioned[T any] struct {
	mu sync.Mutex
	at int64
	ok bool
	v  T
}

// get returns a copy (clone) of the list: from memory when ctx carries the
// version it was read at, otherwise from load, which returns the list and
// the version it read in the same statement; a list of no rows carries no
// version (ok false) and is not kept.
func (c *versioned[T]) get(ctx context.Context, clone func(T) T, load func(context.Context) (T, int64, bool, error)) (T, error) {
	if want, ok := CatalogVersion(ctx); ok {
		c.mu.Lock()
		hit, v := c.ok && c.at == want, c.v
		c.mu.Unlock()
		if hit {
			return clone(v), nil
		}
	}
	v, at, ok, err := load(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	c.v, c.at, c.ok = v, at, ok
	c.mu.Unlock()
	return clone(v), nil
}

// catalogCache is the store's set of versioned lists.
type catalogCache struct {
	templates versioned[[]Template]
	names     versioned[[]NamedID]
	states    versioned[map[int64]TemplateState]
	teams     versioned[[]Team]
}

func cloneTemplates(ts []Template) []Template {
	out := slices.Clone(ts)
	for i := range out {
		out[i].Spec = out[i].Spec.clone()
	}
	return out
}

// PageSession is what a page needs before its handler runs, read in one
// query: the session's data, its user, the catalog version and, for those
// who see approvals, the navigation's count of them.
type PageSession struct {
	// Data is the scs session's data; Found is false when the session does
	// not exist or has expired.
	Data  []byte
	Found bool
	// User is the user the session is mapped to in user_sessions, as
	// UserBySession returns it; nil when the mapping is gone or expired,
	// or the user is disabled.
	User *User
	// CatalogVersion is for WithCatalogVersion.
	CatalogVersion int64
	// ApprovalsWaiting is ApprovalsWaitingFor the user when they are a
	// manager or on the platform team (the roles that see approvals); nil
	// otherwise.
	ApprovalsWaiting *int
}

// LoadPageSession reads the session stored under key (the digest scs
// keeps, which is also user_sessions' key) with its user, the catalog
// version and the user's approvals waiting, in one round trip.
func (s *Store) LoadPageSession(ctx context.Context, key string) (PageSession, error) {
	var ps PageSession
	var (
		id                          *int64
		login, display, email, role *string
		teamID                      *int64
		teamName                    string
		waiting                     *int
	)
	err := s.pool.QueryRow(ctx, `
		SELECT cv.n, s.data, u.id, u.login, u.display_name, u.email, u.role, u.team_id, coalesce(t.name, ''),
		       CASE WHEN u.role IN ('`+string(RoleManager)+`', '`+string(RolePlatform)+`') THEN (`+approvalsWaitingSQL("u.id")+`) END
		FROM catalog_version cv
		LEFT JOIN sessions s ON s.token = $1 AND current_timestamp < s.expiry
		LEFT JOIN user_sessions us ON us.session_key = $1 AND us.expires_at > now()
		LEFT JOIN users u ON u.id = us.user_id AND u.disabled_at IS NULL
		LEFT JOIN teams t ON t.id = u.team_id`, key).
		Scan(&ps.CatalogVersion, &ps.Data, &id, &login, &display, &email, &role, &teamID, &teamName, &waiting)
	if errors.Is(err, pgx.ErrNoRows) {
		return ps, fmt.Errorf("load session: the catalog_version row is missing")
	}
	if err != nil {
		return ps, fmt.Errorf("load session: %w", err)
	}
	ps.Found = ps.Data != nil
	if id != nil {
		ps.User = &User{ID: *id, Login: deref(login), DisplayName: deref(display), Email: deref(email),
			Role: Role(deref(role)), TeamID: teamID, TeamName: teamName}
		ps.ApprovalsWaiting = waiting
	}
	return ps, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
