package web

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"

	"paddock/internal/store"
)

// ProxyConfig configures sign-in behind an authenticating proxy such as
// oauth2-proxy, which signs people in and passes who they are in headers.
// The headers are believed only on connections from Config.TrustedProxies;
// from anywhere else they are ignored, so a visitor who reaches Paddock
// directly cannot claim to be someone.
type ProxyConfig struct {
	// UserHeader identifies the person for good (oauth2-proxy:
	// X-Forwarded-User, the provider's subject). Required.
	UserHeader string
	// LoginHeader and EmailHeader give the login shown in Paddock
	// (X-Forwarded-Preferred-Username, X-Forwarded-Email); the first
	// non-empty of login, email and user is used.
	LoginHeader string
	EmailHeader string
	// GroupsHeader holds comma-separated groups (X-Forwarded-Groups).
	GroupsHeader string
	Mapping      ClaimMapping
}

// DefaultProxyConfig returns oauth2-proxy's header names.
func DefaultProxyConfig() ProxyConfig {
	return ProxyConfig{UserHeader: "X-Forwarded-User", LoginHeader: "X-Forwarded-Preferred-Username",
		EmailHeader: "X-Forwarded-Email", GroupsHeader: "X-Forwarded-Groups"}
}

// proxyIssuer is the issuer recorded for people the proxy vouches for.
const proxyIssuer = "proxy"

// sessProxyIdentity holds, in a session the proxy's headers signed in, a
// digest of those headers (see proxyIdentity).
const sessProxyIdentity = "proxy_identity"

// trustedPeer reports whether the connection comes from a trusted proxy.
func (s *Server) trustedPeer(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// withProxyUser signs in the person named by a trusted proxy's headers.
// The proxy asserts who the person is and what groups they are in on every
// request, so the session is a cache of that assertion, not a grant: while
// the headers stay the same, later requests reuse the session; as soon as
// any of them changes (another person, new groups, a new login) they are
// resolved again, as a new sign-in. A demoted person therefore loses the
// pages of their old role on their very next request, a promoted one gains
// the new ones, and one whose groups no longer grant a role is refused,
// offboarded and signed out.
func (s *Server) withProxyUser(next http.Handler) http.Handler {
	p := s.cfg.Proxy
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p == nil {
			next.ServeHTTP(w, r)
			return
		}
		if !s.trustedPeer(r) {
			// Whoever set these headers is not the proxy: drop them so
			// that nothing further down is tempted to read them.
			for _, h := range []string{p.UserHeader, p.LoginHeader, p.EmailHeader, p.GroupsHeader} {
				if h != "" {
					r.Header.Del(h)
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		subject := r.Header.Get(p.UserHeader)
		ctx := r.Context()
		identity := proxyIdentity(r, p)
		if subject == "" || (s.sessions.GetInt64(ctx, sessionUserID) != 0 && s.sessions.GetString(ctx, sessProxyIdentity) == identity) {
			next.ServeHTTP(w, r)
			return
		}
		login, ok := cleanLogin(firstNonEmpty(r.Header.Get(p.LoginHeader), r.Header.Get(p.EmailHeader), subject))
		if !ok {
			s.page(func(http.ResponseWriter, *http.Request) error {
				return errStatus(http.StatusForbidden, "The proxy passed no usable user name, so Paddock cannot sign you in. Tell the platform team.")
			})(w, r)
			return
		}
		_, err := s.signInExternal(r, p.Mapping, store.ExternalUser{
			Issuer: proxyIssuer, Subject: subject, Login: login, DisplayName: login, Email: r.Header.Get(p.EmailHeader),
		}, splitGroups(r.Header.Get(p.GroupsHeader)), "proxy")
		if err != nil {
			// Whoever this browser was signed in as, the proxy now says
			// it is someone Paddock refuses: nothing of the old session
			// may outlive this answer.
			_ = s.sessions.Destroy(ctx)
			s.page(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
			return
		}
		s.sessions.Put(ctx, sessProxyIdentity, identity)
		next.ServeHTTP(w, r)
	})
}

// proxyIdentity digests the proxy's identity headers, so that the session
// can tell cheaply whether they changed since it was signed in.
func proxyIdentity(r *http.Request, p *ProxyConfig) string {
	h := sha256.New()
	for _, name := range []string{p.UserHeader, p.LoginHeader, p.EmailHeader, p.GroupsHeader} {
		v := ""
		if name != "" {
			v = r.Header.Get(name)
		}
		// Length-prefixed, so that no two lists of values digest alike.
		fmt.Fprintf(h, "%d:%s;", len(v), v)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
