package web

import (
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

const sessProxySubject = "proxy_subject"

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

// withProxyUser signs in the person named by a trusted proxy's headers, once
// per session: later requests of the same person reuse the session, and a
// different person on the same browser gets a new one.
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
		if subject == "" || (s.sessions.GetInt64(ctx, sessionUserID) != 0 && s.sessions.GetString(ctx, sessProxySubject) == subject) {
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
			s.page(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
			return
		}
		s.sessions.Put(ctx, sessProxySubject, subject)
		next.ServeHTTP(w, r)
	})
}
