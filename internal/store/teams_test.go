package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"paddock/internal/store"
)

// TestReservedNamespacesMakeNoTeam: neither EnsureTeam (seeding) nor a
// sign-in whose groups name a team gives a team the namespace of the
// cluster, KubeVirt, CDI or Paddock; other names are fine.
func TestReservedNamespacesMakeNoTeam(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := b.st.Pool().QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		ns       string
		reserved bool
	}{
		{"default", true}, {"kube-system", true}, {"kube-public", true}, {"kube-node-lease", true},
		{"kube-anything", true}, {"kubevirt", true}, {"cdi", true}, {"paddock", true},
		{"kubeflow", false}, {"paddock-dev", false}, {"cdi-team", false}, {"defaults", false},
	} {
		err := store.CheckTeamNamespace(tc.ns)
		if tc.reserved != errors.Is(err, store.ErrReservedNamespace) {
			t.Errorf("CheckTeamNamespace(%q) = %v", tc.ns, err)
		}
		if tc.reserved && !strings.Contains(err.Error(), store.ReservedNamespaceRule) {
			t.Errorf("the refusal of %q does not name the rule: %v", tc.ns, err)
		}

		_, err = b.st.EnsureTeam(ctx, "t-"+tc.ns, tc.ns)
		if tc.reserved != errors.Is(err, store.ErrReservedNamespace) || !tc.reserved && err != nil {
			t.Errorf("EnsureTeam(namespace %q): %v", tc.ns, err)
		}

		_, err = b.st.UpsertExternalUser(ctx, store.ExternalUser{Issuer: "https://idp.example", Subject: "s-" + tc.ns,
			Login: "u-" + tc.ns, Role: store.RoleDeveloper, Team: tc.ns})
		if tc.reserved != errors.Is(err, store.ErrReservedNamespace) || !tc.reserved && err != nil {
			t.Errorf("sign-in into team %q: %v", tc.ns, err)
		}
		want := 0
		if !tc.reserved {
			want = 1
		}
		// One team from EnsureTeam ("t-" + ns), one from the sign-in (ns).
		if n := count(`SELECT count(*) FROM teams WHERE namespace = $1`, tc.ns); n != 2*want {
			t.Errorf("%d teams with namespace %q", n, tc.ns)
		}
		if n := count(`SELECT count(*) FROM users WHERE login = $1`, "u-"+tc.ns); n != want {
			t.Errorf("%d users signed in into team %q", n, tc.ns)
		}
	}
}
