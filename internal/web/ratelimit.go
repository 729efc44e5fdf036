package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
)

// clientIP resolves the client's address once per request: the TCP peer,
// or, from a trusted proxy, the nearest untrusted address in
// X-Forwarded-For. Rate limits and logs read it with middleware.GetClientIP.
func (s *Server) clientIP() func(http.Handler) http.Handler {
	if len(s.cfg.TrustedProxies) == 0 {
		return middleware.ClientIPFromRemoteAddr
	}
	prefixes := make([]string, len(s.cfg.TrustedProxies))
	for i, p := range s.cfg.TrustedProxies {
		prefixes[i] = p.String()
	}
	return middleware.ClientIPFromXFF(prefixes...)
}

// clientIPKey buckets requests by client address (IPv6 by /64).
func clientIPKey(r *http.Request) (string, error) {
	ip := middleware.GetClientIP(r.Context())
	if ip == "" {
		ip = "unknown"
	}
	return httprate.CanonicalizeIP(ip), nil
}

// userRateKey buckets API requests by the token's owner, so that one
// person's scripts cannot starve everyone else's.
func userRateKey(r *http.Request) (string, error) {
	if u, ok := userFrom(r.Context()); ok {
		return "user:" + strconv.FormatInt(u.ID, 10), nil
	}
	return clientIPKey(r)
}

// signInLimit bounds sign-in attempts per client address.
func (s *Server) signInLimit() func(http.Handler) http.Handler {
	return httprate.LimitBy(s.cfg.SignInRate, time.Minute, clientIPKey,
		httprate.WithLimitHandler(s.page(func(http.ResponseWriter, *http.Request) error {
			return errStatus(http.StatusTooManyRequests, "Too many sign-in attempts from your address. Wait a minute and try again.")
		})))
}

// apiLimit bounds API calls: per client address before authentication
// (twice the per-user rate, as several people may share an address), and
// per token owner after.
func (s *Server) apiLimit(perUser bool) func(http.Handler) http.Handler {
	limit, key := 2*s.cfg.APIRate, clientIPKey
	if perUser {
		limit, key = s.cfg.APIRate, userRateKey
	}
	return httprate.LimitBy(limit, time.Minute, key, httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: "rate limit exceeded; retry after the time in Retry-After"})
	}))
}
