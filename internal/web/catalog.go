package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"paddock/internal/store"
)

// catalog lists the templates the user's team may request, filtered by OS,
// tag and a text search.
func (s *Server) catalog(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	offer, err := s.catalogOffer(r.Context(), u)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	v := catalogView{Base: s.viewBase(r, "Catalog"), Q: strings.TrimSpace(q.Get("q")), OS: q.Get("os"), Tag: q.Get("tag"),
		OSes: offer.oses, Tags: offer.tags}
	for i, t := range offer.cards {
		if v.OS != "" && t.OSFamily != v.OS || v.Tag != "" && !slices.Contains(t.Tags, v.Tag) {
			continue
		}
		if v.Q != "" && !matches(t, v.Q) {
			continue
		}
		v.Cards = append(v.Cards, offer.html[i])
	}
	return render(w, r, http.StatusOK, catalogPage(v))
}

// catalogOffer is what the catalog offers one kind of user before its
// filters: the templates' cards in catalog order, their HTML, and the OS
// families and tags to filter on. It depends only on the templates, the
// user's team and whether they are of the platform team or may request, so
// it is kept for each of those as long as the catalog version the request
// read stays the same (see store.WithCatalogVersion); a request without a
// version builds its own.
type catalogOffer struct {
	cards      []templateCard
	html       []string
	oses, tags []string
}

type offerKey struct {
	team             string
	platform, canAsk bool
}

// catalogOffers keeps the offers of one catalog version.
type catalogOffers struct {
	mu sync.Mutex
	at int64
	m  map[offerKey]*catalogOffer
}

func (s *Server) catalogOffer(ctx context.Context, u store.User) (*catalogOffer, error) {
	key := offerKey{team: u.TeamName, platform: u.Role == store.RolePlatform, canAsk: canRequest(u)}
	at, versioned := store.CatalogVersion(ctx)
	if versioned {
		s.offers.mu.Lock()
		o, ok := s.offers.m[key]
		ok = ok && s.offers.at == at
		s.offers.mu.Unlock()
		if ok {
			return o, nil
		}
	}
	all, err := s.store.Templates(ctx)
	if err != nil {
		return nil, err
	}
	o := &catalogOffer{}
	var b strings.Builder
	for _, t := range offered(all, u) {
		c := cardOf(t)
		if !slices.Contains(o.oses, c.OSFamily) {
			o.oses = append(o.oses, c.OSFamily)
		}
		for _, tag := range c.Tags {
			if !slices.Contains(o.tags, tag) {
				o.tags = append(o.tags, tag)
			}
		}
		b.Reset()
		if err := catalogCard(c, key.canAsk).Render(ctx, &b); err != nil {
			return nil, fmt.Errorf("render the card of %s: %w", c.Name, err)
		}
		o.cards, o.html = append(o.cards, c), append(o.html, b.String())
	}
	slices.Sort(o.oses)
	slices.Sort(o.tags)
	if versioned {
		s.offers.mu.Lock()
		if s.offers.at != at || s.offers.m == nil {
			s.offers.at, s.offers.m = at, map[offerKey]*catalogOffer{}
		}
		s.offers.m[key] = o
		s.offers.mu.Unlock()
	}
	return o, nil
}

// offered keeps the templates open to new requests from u's team; the
// platform team sees every template that is not deprecated.
func offered(all []store.Template, u store.User) []store.Template {
	var out []store.Template
	for _, t := range all {
		if t.DeprecatedAt != nil {
			continue
		}
		if u.Role != store.RolePlatform && !t.Spec.AllowsTeam(u.TeamName) {
			continue
		}
		out = append(out, t)
	}
	return out
}

func matches(t templateCard, q string) bool {
	q = strings.ToLower(q)
	for _, s := range append([]string{t.Name, t.DisplayName, t.Description, t.OSFamily}, t.Tags...) {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}
