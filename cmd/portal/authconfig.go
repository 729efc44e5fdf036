package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"paddock/internal/web"
)

// authConfig is how people sign in and how long they stay signed in, read
// from the environment (see README, "Sign-in and roles").
type authConfig struct {
	OIDC               *web.OIDCConfig
	Proxy              *web.ProxyConfig
	TrustedProxies     []netip.Prefix
	SessionLifetime    time.Duration
	SessionIdleTimeout time.Duration
	SignInRate         int
	APIRate            int
}

// secretEnv reads a secret from KEY or from the file named by KEY_FILE (a
// mounted Kubernetes secret, say), never both. Trailing newlines of the file
// are dropped. The value is returned, never printed.
func secretEnv(getenv func(string) string, key string) (string, error) {
	v, file := getenv(key), getenv(key+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("set %s or %s_FILE, not both", key, key)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			// The path is not secret; the contents never reach this message.
			return "", fmt.Errorf("read %s_FILE: %w", key, errors.Unwrap(err))
		}
		v = strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s_FILE (%s) is empty", key, file)
		}
	}
	return v, nil
}

// readAuthConfig reads the sign-in settings. It fails on settings that are
// incomplete or contradict each other, naming the variable to fix.
func readAuthConfig(getenv func(string) string) (authConfig, error) {
	var a authConfig
	var err error
	if a.TrustedProxies, err = parsePrefixes(getenv("PADDOCK_TRUSTED_PROXIES")); err != nil {
		return a, fmt.Errorf("PADDOCK_TRUSTED_PROXIES: %w", err)
	}
	a.SessionLifetime = envDuration(getenv, "PADDOCK_SESSION_LIFETIME", web.DefaultSessionLifetime)
	a.SessionIdleTimeout = envDuration(getenv, "PADDOCK_SESSION_IDLE_TIMEOUT", web.DefaultSessionIdleTimeout)
	if a.SessionIdleTimeout > a.SessionLifetime {
		return a, errors.New("PADDOCK_SESSION_IDLE_TIMEOUT must not exceed PADDOCK_SESSION_LIFETIME")
	}
	a.SignInRate = envInt(getenv, "PADDOCK_SIGNIN_RATE", web.DefaultSignInRate)
	a.APIRate = envInt(getenv, "PADDOCK_API_RATE", web.DefaultAPIRate)

	oidcOn := getenv("PADDOCK_OIDC_ISSUER") != ""
	proxyOn := envBool(getenv, "PADDOCK_PROXY_AUTH", false)
	if !oidcOn && !proxyOn {
		return a, nil
	}
	mapping, err := readMapping(getenv)
	if err != nil {
		return a, err
	}
	if oidcOn {
		secret, err := secretEnv(getenv, "PADDOCK_OIDC_CLIENT_SECRET")
		if err != nil {
			return a, err
		}
		o := &web.OIDCConfig{
			Issuer: getenv("PADDOCK_OIDC_ISSUER"), ClientID: getenv("PADDOCK_OIDC_CLIENT_ID"), ClientSecret: secret,
			RedirectURL: getenv("PADDOCK_OIDC_REDIRECT_URL"), Scopes: strings.Fields(strings.ReplaceAll(getenv("PADDOCK_OIDC_SCOPES"), ",", " ")),
			Mapping: mapping,
		}
		var missing []string
		for k, v := range map[string]string{"PADDOCK_OIDC_CLIENT_ID": o.ClientID, "PADDOCK_OIDC_REDIRECT_URL": o.RedirectURL,
			"PADDOCK_OIDC_CLIENT_SECRET (or _FILE)": o.ClientSecret} {
			if v == "" {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return a, fmt.Errorf("single sign-on is half configured: PADDOCK_OIDC_ISSUER is set but not %s", strings.Join(slices.Sorted(slices.Values(missing)), ", "))
		}
		a.OIDC = o
	}
	if proxyOn {
		if len(a.TrustedProxies) == 0 {
			return a, errors.New("PADDOCK_PROXY_AUTH needs PADDOCK_TRUSTED_PROXIES: the proxy's addresses, the only ones whose headers are believed")
		}
		p := web.DefaultProxyConfig()
		p.UserHeader = envOr(getenv, "PADDOCK_PROXY_USER_HEADER", p.UserHeader)
		p.LoginHeader = envOr(getenv, "PADDOCK_PROXY_LOGIN_HEADER", p.LoginHeader)
		p.EmailHeader = envOr(getenv, "PADDOCK_PROXY_EMAIL_HEADER", p.EmailHeader)
		p.GroupsHeader = envOr(getenv, "PADDOCK_PROXY_GROUPS_HEADER", p.GroupsHeader)
		p.Mapping = mapping
		a.Proxy = &p
	}
	return a, nil
}

func readMapping(getenv func(string) string) (web.ClaimMapping, error) {
	roles, err := web.ParseRoleMap(getenv("PADDOCK_ROLE_MAP"))
	if err != nil {
		return web.ClaimMapping{}, fmt.Errorf("PADDOCK_ROLE_MAP: %w", err)
	}
	return web.ClaimMapping{GroupsClaim: envOr(getenv, "PADDOCK_GROUPS_CLAIM", "groups"), Roles: roles,
		TeamPrefix: getenv("PADDOCK_TEAM_PREFIX")}, nil
}

// parsePrefixes reads comma-separated CIDRs or single addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR", item)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func envInt(getenv func(string) string, key string, def int) int {
	v, err := strconv.Atoi(getenv(key))
	if err != nil || v <= 0 {
		return def
	}
	return v
}
