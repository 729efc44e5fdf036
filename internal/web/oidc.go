package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"paddock/internal/store"
)

// OIDCConfig configures single sign-on with an OpenID provider
// (authorization code flow with PKCE; state and nonce checked).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is read
	// at the first sign-in (so Paddock starts while the provider is away).
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is Paddock's callback as registered at the provider:
	// https://paddock.example.com/auth/oidc/callback.
	RedirectURL string
	// Scopes are requested besides "openid"; default profile, email, groups.
	Scopes  []string
	Mapping ClaimMapping
	// HTTPClient talks to the provider; nil means one with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock ID tokens are checked against; nil means time.Now.
	Now func() time.Time
}

// LogValue keeps the client secret out of logs, whatever logs the config.
func (c OIDCConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("issuer", c.Issuer), slog.String("client_id", c.ClientID),
		slog.String("redirect_url", c.RedirectURL), slog.Bool("client_secret_set", c.ClientSecret != ""))
}

// String is LogValue for fmt.
func (c OIDCConfig) String() string {
	return fmt.Sprintf("OIDC{issuer=%s client_id=%s redirect_url=%s client_secret=[redacted]}", c.Issuer, c.ClientID, c.RedirectURL)
}

// oidcClient discovers the provider once, on first use.
type oidcClient struct {
	cfg  OIDCConfig
	http *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newOIDCClient(cfg OIDCConfig) *oidcClient {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"profile", "email", "groups"}
	}
	if cfg.Mapping.GroupsClaim == "" {
		cfg.Mapping.GroupsClaim = "groups"
	}
	return &oidcClient{cfg: cfg, http: hc}
}

// ctx carries the HTTP client to go-oidc and oauth2. It is detached from
// the request: the provider keeps it to fetch signing keys later.
func (c *oidcClient) ctx(ctx context.Context) context.Context {
	ctx = oidc.ClientContext(context.WithoutCancel(ctx), c.http)
	return context.WithValue(ctx, oauth2.HTTPClient, c.http)
}

func (c *oidcClient) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider == nil {
		p, err := oidc.NewProvider(c.ctx(ctx), c.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("discover OpenID provider %s: %w", c.cfg.Issuer, err)
		}
		c.provider = p
		c.oauth = &oauth2.Config{
			ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, RedirectURL: c.cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, c.cfg.Scopes...),
		}
		c.verifier = p.Verifier(&oidc.Config{ClientID: c.cfg.ClientID, Now: c.cfg.Now})
	}
	return c.oauth, c.verifier, nil
}

// Session keys of a sign-in in progress.
const (
	sessOIDCState    = "oidc_state"
	sessOIDCNonce    = "oidc_nonce"
	sessOIDCVerifier = "oidc_verifier"
	sessOIDCNext     = "oidc_next"
	sessOIDCStarted  = "oidc_started"
)

// oauthErrorCode is the shape of an OAuth error code, the only part of an
// error answer worth showing.
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// oidcLoginWindow is how long a started sign-in may take at the provider.
const oidcLoginWindow = 10 * time.Minute

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// errSignIn is what a visitor sees when a sign-in cannot be completed for a
// reason they can fix by starting again.
var errSignIn = errStatus(http.StatusBadRequest,
	"This sign-in could not be completed: the link is stale, was used already, or was not started here. Start again from the sign-in page.")

// oidcLogin starts the authorization code flow: a fresh state, nonce and
// PKCE verifier go into the (server-side) session, and the browser goes to
// the provider.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) error {
	if s.oidc == nil {
		return errNotFound
	}
	oc, _, err := s.oidc.setup(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "single sign-on unavailable", "err", err)
		return errStatus(http.StatusServiceUnavailable, "Single sign-on is unavailable right now: Paddock cannot reach the identity provider. Try again in a minute.")
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	ctx := r.Context()
	s.sessions.Put(ctx, sessOIDCState, state)
	s.sessions.Put(ctx, sessOIDCNonce, nonce)
	s.sessions.Put(ctx, sessOIDCVerifier, verifier)
	s.sessions.Put(ctx, sessOIDCNext, safeNext(r.URL.Query().Get("next")))
	s.sessions.Put(ctx, sessOIDCStarted, time.Now().Unix())
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	return nil
}

// idClaims are the ID-token claims Paddock reads.
type idClaims struct {
	Subject           string `json:"sub"`
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
	Name              string `json:"name"`
}

// oidcCallback completes the flow: it checks the state against the session
// (once: a replayed callback finds none), exchanges the code with the PKCE
// verifier, verifies the ID token (signature, issuer, audience, expiry) and
// its nonce, maps the groups to a role and team, and signs the user in.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	if s.oidc == nil {
		return errNotFound
	}
	ctx := r.Context()
	// Pop everything first: whatever happens next, this state is spent.
	state := s.sessions.PopString(ctx, sessOIDCState)
	nonce := s.sessions.PopString(ctx, sessOIDCNonce)
	verifier := s.sessions.PopString(ctx, sessOIDCVerifier)
	next := s.sessions.PopString(ctx, sessOIDCNext)
	started := s.sessions.GetInt64(ctx, sessOIDCStarted)
	s.sessions.Remove(ctx, sessOIDCStarted)
	q := r.URL.Query()
	if state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(q.Get("state"))) != 1 {
		s.log.InfoContext(ctx, "sign-in refused: unknown or spent state")
		return errSignIn
	}
	if time.Since(time.Unix(started, 0)) > oidcLoginWindow {
		return errSignIn
	}
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(ctx, "sign-in refused by the identity provider", "error", e)
		if !oauthErrorCode.MatchString(e) {
			e = "unknown reason"
		}
		return errStatus(http.StatusForbidden, "The identity provider did not sign you in ("+e+"). Start again from the sign-in page.")
	}
	oc, verify, err := s.oidc.setup(ctx)
	if err != nil {
		return err
	}
	octx := s.oidc.ctx(ctx)
	tok, err := oc.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		s.log.WarnContext(ctx, "sign-in refused: code exchange failed", "err", err)
		return errSignIn
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.log.WarnContext(ctx, "sign-in refused: the provider sent no ID token")
		return errSignIn
	}
	idt, err := verify.Verify(octx, raw)
	if err != nil {
		s.log.WarnContext(ctx, "sign-in refused: ID token not valid", "err", err)
		return errStatus(http.StatusUnauthorized, "The identity provider's answer could not be verified, so you were not signed in. Start again from the sign-in page; if this keeps happening, tell the platform team.")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		s.log.WarnContext(ctx, "sign-in refused: ID token nonce does not match")
		return errSignIn
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			s.log.WarnContext(ctx, "sign-in refused: access token hash does not match", "err", err)
			return errSignIn
		}
	}
	var c idClaims
	all := map[string]any{}
	if err := idt.Claims(&c); err != nil {
		return fmt.Errorf("read ID token claims: %w", err)
	}
	if err := idt.Claims(&all); err != nil {
		return fmt.Errorf("read ID token claims: %w", err)
	}
	groupsClaim, ok := all[s.oidc.cfg.Mapping.GroupsClaim]
	if !ok {
		// Some providers put groups only in the userinfo answer.
		if groupsClaim, err = s.userinfoGroups(octx, tok, idt.Subject); err != nil {
			return err
		}
	}
	login, ok := cleanLogin(firstNonEmpty(c.PreferredUsername, c.Email, c.Subject))
	if !ok {
		return errStatus(http.StatusForbidden, "Your account at the identity provider has no usable user name, so Paddock cannot sign you in. Tell the platform team.")
	}
	_, err = s.signInExternal(r, s.oidc.cfg.Mapping, store.ExternalUser{
		Issuer: s.oidc.cfg.Issuer, Subject: idt.Subject, Login: login,
		DisplayName: firstNonEmpty(c.Name, login), Email: c.Email,
	}, groupsOf(groupsClaim), "oidc")
	if err != nil {
		return err
	}
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
	return nil
}

// userinfoGroups fetches the groups claim from the userinfo endpoint.
func (s *Server) userinfoGroups(ctx context.Context, tok *oauth2.Token, subject string) (any, error) {
	if s.oidc.provider.UserInfoEndpoint() == "" {
		return nil, nil
	}
	ui, err := s.oidc.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, fmt.Errorf("read userinfo: %w", err)
	}
	if ui.Subject != subject {
		return nil, errors.New("userinfo subject differs from the ID token's")
	}
	all := map[string]any{}
	if err := ui.Claims(&all); err != nil {
		return nil, fmt.Errorf("read userinfo claims: %w", err)
	}
	return all[s.oidc.cfg.Mapping.GroupsClaim], nil
}

// signInExternal maps an identity provider's groups to a role and team,
// creates or updates the user, and starts their session. The groups decide
// at once: a lower role is stored (and so applies to every session and
// token of the user), and someone whose groups give no role is refused and,
// if they had an account, offboarded (disabled, tokens revoked, signed out
// everywhere; see store.RefuseExternalUser). An account an administrator
// disabled is refused whatever the groups say. Every refusal is audited.
func (s *Server) signInExternal(r *http.Request, m ClaimMapping, x store.ExternalUser, groups []string, via string) (store.User, error) {
	ctx := r.Context()
	role, team, ok := m.resolve(groups)
	if !ok {
		if err := s.store.RefuseExternalUser(ctx, x,
			map[string]any{"via": via, "reason": "no group grants a role", "groups": groups}); err != nil {
			return store.User{}, err
		}
		return store.User{}, errStatus(http.StatusForbidden, fmt.Sprintf(
			"You (%s) are signed in at the identity provider, but none of your groups gives access to Paddock. "+
				"Ask your manager or the platform team to add you to one of these groups: %s.",
			x.Login, joinOr(m.allowedGroups())))
	}
	x.Role, x.Team = role, team
	u, err := s.store.UpsertExternalUser(ctx, x)
	if errors.Is(err, store.ErrReservedNamespace) {
		if err := s.store.Audit(ctx, nil, store.Actor{Name: x.Login}, store.AuditSignInRefused, store.UserTarget(x.Login),
			map[string]any{"via": via, "reason": "team namespace is reserved", "team": team}); err != nil {
			return store.User{}, err
		}
		return store.User{}, errStatus(http.StatusForbidden, fmt.Sprintf(
			"Your group %s%s would make you a member of team %q, whose namespace would be %q, but %s: "+
				"those belong to the cluster, KubeVirt, CDI and Paddock. You were not signed in; "+
				"ask the platform team to rename the group.", m.TeamPrefix, team, team, team, store.ReservedNamespaceRule))
	}
	if errors.Is(err, store.ErrLoginTaken) {
		return store.User{}, errStatus(http.StatusConflict, fmt.Sprintf(
			"The user name %q already belongs to another Paddock account, so you were not signed in. Tell the platform team.", x.Login))
	}
	if errors.Is(err, store.ErrUserDisabled) {
		if err := s.store.Audit(ctx, nil, store.Actor{Name: x.Login}, store.AuditSignInRefused, store.UserTarget(x.Login),
			map[string]any{"via": via, "reason": "account disabled by an administrator"}); err != nil {
			return store.User{}, err
		}
		return store.User{}, err
	}
	if err != nil {
		return store.User{}, err
	}
	if err := s.startSession(r, u, via, map[string]any{"issuer": x.Issuer}); err != nil {
		return store.User{}, err
	}
	return u, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func joinOr(ss []string) string {
	switch len(ss) {
	case 0:
		return "(none configured)"
	case 1:
		return ss[0]
	}
	out := ""
	for i, s := range ss {
		switch {
		case i == 0:
		case i == len(ss)-1:
			out += " or "
		default:
			out += ", "
		}
		out += s
	}
	return out
}
