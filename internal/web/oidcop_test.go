package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// testOP is a real OpenID provider (zitadel/oidc's op package over the
// example in-memory storage), started inside the test, with knobs to make
// it misbehave: a wrong audience, expired ID tokens, a wrong nonce, groups
// only at the userinfo endpoint.
type testOP struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string

	mu              sync.Mutex
	users           map[string]*storage.User
	groups          map[string][]string // by user id
	next            string              // username who signs in at the next login
	audience        []string
	nonce           string
	idTokenLifetime time.Duration
	groupsInIDToken bool
}

const (
	opClientID     = "paddock"
	opClientSecret = "s3cr3t-client-secret-value"
)

// newTestOP starts a provider whose only client is Paddock, redirecting to
// redirectURL.
func newTestOP(t *testing.T, redirectURL string) *testOP {
	t.Helper()
	o := &testOP{t: t, users: map[string]*storage.User{}, groups: map[string][]string{},
		idTokenLifetime: 5 * time.Minute, groupsInIDToken: true}
	var h http.Handler
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(o.srv.Close)
	o.issuer = o.srv.URL
	clients := map[string]*storage.Client{opClientID: storage.WebClient(opClientID, opClientSecret, redirectURL)}
	st := &opStorage{Storage: storage.NewStorageWithClients(opUsers{o}, clients), op: o}
	provider, err := op.NewProvider(&op.Config{CryptoKey: sha256.Sum256([]byte("test")), CodeMethodS256: true, AuthMethodPost: true},
		st, op.StaticIssuer(o.issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	// The login "page" signs in whoever the test chose, without a form.
	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		o.mu.Lock()
		u := o.users[o.next]
		o.mu.Unlock()
		if u == nil {
			http.Error(w, "no user chosen", http.StatusForbidden)
			return
		}
		if err := st.CheckUsernamePassword(u.Username, u.Password, id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, op.AuthCallbackURL(provider)(r.Context(), id), http.StatusFound)
	})
	mux.Handle("/login/username", op.NewIssuerInterceptor(provider.IssuerFromRequest).Handler(login))
	mux.Handle("/", provider)
	h = o.swapAudience(mux, st)
	return o
}

// swapAudience re-issues the token endpoint's ID token for another client
// when the audience knob is set: signed with the provider's own key and
// valid in every other respect, as a token meant for another application.
func (o *testOP) swapAudience(next http.Handler, st *opStorage) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		aud := o.audience
		o.mu.Unlock()
		if aud == nil || r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var resp map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp["id_token"] == nil {
			o.t.Errorf("token endpoint: %s", rec.Body)
			return
		}
		parts := strings.Split(resp["id_token"].(string), ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			o.t.Error(err)
			return
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			o.t.Error(err)
			return
		}
		claims["aud"], claims["azp"] = aud, aud[0]
		key, err := st.SigningKey(r.Context())
		if err != nil {
			o.t.Error(err)
			return
		}
		signer, err := op.SignerFromKey(key)
		if err != nil {
			o.t.Error(err)
			return
		}
		if resp["id_token"], err = crypto.Sign(claims, signer); err != nil {
			o.t.Error(err)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_ = json.NewEncoder(w).Encode(resp)
	})
}

// addUser registers a person at the provider.
func (o *testOP) addUser(id, username, name string, groups ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users[username] = &storage.User{ID: id, Username: username, Password: "pw", FirstName: name, LastName: "Tester",
		Email: username + "@example.com", EmailVerified: true}
	o.groups[id] = groups
}

func (o *testOP) signInAs(username string) { o.mu.Lock(); o.next = username; o.mu.Unlock() }

func (o *testOP) set(fn func(o *testOP)) { o.mu.Lock(); fn(o); o.mu.Unlock() }

type opUsers struct{ o *testOP }

func (u opUsers) GetUserByID(id string) *storage.User {
	u.o.mu.Lock()
	defer u.o.mu.Unlock()
	for _, x := range u.o.users {
		if x.ID == id {
			return x
		}
	}
	return nil
}

func (u opUsers) GetUserByUsername(name string) *storage.User {
	u.o.mu.Lock()
	defer u.o.mu.Unlock()
	return u.o.users[name]
}

func (u opUsers) ExampleClientID() string { return "service" }

// opStorage adds the knobs to the example storage.
type opStorage struct {
	*storage.Storage
	op *testOP
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return opClient{Client: c, op: s.op}, nil
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	ar, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	if s.op.nonce == "" {
		return ar, nil
	}
	return tamperedRequest{AuthRequest: ar, nonce: s.op.nonce}, nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	if s.op.groupsInIDToken {
		ui.AppendClaims("groups", s.op.groups[req.GetSubject()])
	}
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	ui.AppendClaims("groups", s.op.groups[subject])
	return nil
}

type opClient struct {
	op.Client
	op *testOP
}

func (c opClient) IDTokenLifetime() time.Duration {
	c.op.mu.Lock()
	defer c.op.mu.Unlock()
	return c.op.idTokenLifetime
}

func (c opClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c opClient) IsScopeAllowed(scope string) bool { return scope == "groups" }

// tamperedRequest issues ID tokens with another nonce.
type tamperedRequest struct {
	op.AuthRequest
	nonce string
}

func (r tamperedRequest) GetNonce() string { return r.nonce }
