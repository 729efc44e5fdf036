package provision_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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

// rbacMatchesAudit holds the shipped RBAC against the requests the
// provisioner's test users made across the real-cluster tests, as the API
// server's audit log recorded them: deploy/rbac.yaml must grant every kind
// of request the provisioner user made and nothing it did not make, and
// deploy/rbac-create-namespaces.yaml exactly what the user holding both
// made beyond deploy/rbac.yaml.
func rbacMatchesAudit(env *kubetest.Env) error {
	granted := func(file string) (map[kubetest.APICall]bool, error) {
		b, err := os.ReadFile(filepath.Join(env.RepoRoot, file))
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
	used, err := env.AuditedCalls(provisionerUser)
	if err != nil {
		return err
	}
	if err := kubetest.CompareGrants(base, used); err != nil {
		return fmt.Errorf("%s, as %s:\n%w", kubetest.RBACFile, provisionerUser, err)
	}
	used, err = env.AuditedCalls(namespaceCreator)
	if err != nil {
		return err
	}
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
