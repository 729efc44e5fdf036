package provision_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
)

// namespaceCreator is the test user bound to deploy/rbac.yaml and the
// optional deploy/rbac-create-namespaces.yaml.
const namespaceCreator = "paddock-provisioner-ns-test"

// TestKubeCreatesMissingNamespaceWithTheOptionalRole: with
// PADDOCK_CREATE_NAMESPACES and the optional role, a team's missing
// namespace is created, labelled as Paddock's, and the VM made in it.
func TestKubeCreatesMissingNamespaceWithTheOptionalRole(t *testing.T) {
	env := realCluster(t)
	ctx := context.Background()
	if err := env.ApplyPaddockRBAC(ctx, namespaceCreator); err != nil {
		t.Fatal(err)
	}
	if err := env.ApplyRBACFile(ctx, kubetest.CreateNamespacesRBACFile, namespaceCreator); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.ConfigFor(namespaceCreator)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newKubeHarnessOn(t, env, cfg)
	h.cluster.CreateNamespaces = true
	ns := fmt.Sprintf("paddock-new-%d", time.Now().UnixNano())
	team, err := h.st.EnsureTeam(h.ctx, "newcomers", ns)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.st.SubmitRequest(h.ctx, store.NewRequest{TeamID: team.ID, Requester: h.dev, Template: "cirros", Size: "nano",
		Name: "first", SSHPublicKey: sshKey, LeaseDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID, store.StateProvisioning, nil)
	if r.VM == nil || r.VM.Namespace != ns {
		t.Fatalf("vm = %+v", r.VM)
	}
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	got, err := admin.Kube.CoreV1().Namespaces().Get(h.ctx, ns, metav1.GetOptions{})
	if err != nil || got.Labels[provision.LabelManagedBy] != provision.ManagedByValue {
		t.Fatalf("namespace %s: %v, labels %v", ns, err, got.Labels)
	}
}

// wholePackage reports whether every test of the package ran: only then
// does the audit log show every call the provisioner makes.
func wholePackage() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}

// audits are the calls the provisioner's test users made on every test
// cluster read so far (keepAudit), per user.
var (
	auditsMu sync.Mutex
	audits   = map[string]map[kubetest.APICall]kubetest.Audited{}
)

// keepAudit adds the calls the provisioner's test users made on env, from
// its audit log, to audits: for the shared clusters at the end of the
// package, and for a cluster of one test before the test stops it
// (stopKeepingAudit).
func keepAudit(env *kubetest.Env) error {
	auditsMu.Lock()
	defer auditsMu.Unlock()
	for _, user := range []string{provisionerUser, namespaceCreator} {
		used, err := env.AuditedCalls(user)
		if err != nil {
			return err
		}
		if audits[user] == nil {
			audits[user] = map[kubetest.APICall]kubetest.Audited{}
		}
		for c, a := range used {
			sum := audits[user][c]
			sum.Allowed += a.Allowed
			sum.Forbidden += a.Forbidden
			audits[user][c] = sum
		}
	}
	return nil
}

// stopKeepingAudit is t.Cleanup's stop of a cluster of the test's own,
// which first keeps its audit log's calls for rbacMatchesAudit.
func stopKeepingAudit(t *testing.T, env *kubetest.Env) {
	t.Cleanup(func() {
		if err := keepAudit(env); err != nil {
			t.Errorf("audit log: %v", err)
		}
		_ = env.Stop()
	})
}

// rbacMatchesAudit holds the shipped RBAC against the requests the
// provisioner's test users made across the real-cluster tests, on every
// cluster they ran on (the shared one with the Simulator, the one with
// KubeVirt's controllers, and those of single tests), as the API servers'
// audit logs recorded them (keepAudit): deploy/rbac.yaml must grant every
// kind of request the provisioner user made and nothing it did not make,
// and deploy/rbac-create-namespaces.yaml exactly what the user holding
// both made beyond deploy/rbac.yaml.
func rbacMatchesAudit(repoRoot string) error {
	granted := func(file string) (map[kubetest.APICall]bool, error) {
		b, err := os.ReadFile(filepath.Join(repoRoot, file))
		if err != nil {
			return nil, err
		}
		return kubetest.GrantedCalls(b)
	}
	base, err := granted(kubetest.RBACFile)
	if err != nil {
		return err
	}
	extra, err := granted(kubetest.CreateNamespacesRBACFile)
	if err != nil {
		return err
	}
	auditsMu.Lock()
	defer auditsMu.Unlock()
	if err := kubetest.CompareGrants(base, audits[provisionerUser]); err != nil {
		return fmt.Errorf("%s, as %s:\n%w", kubetest.RBACFile, provisionerUser, err)
	}
	used := maps.Clone(audits[namespaceCreator])
	for c, a := range used {
		if base[c] && a.Forbidden == 0 {
			delete(used, c)
		}
	}
	if err := kubetest.CompareGrants(extra, used); err != nil {
		return fmt.Errorf("%s, as %s:\n%w", kubetest.CreateNamespacesRBACFile, namespaceCreator, err)
	}
	return nil
}
