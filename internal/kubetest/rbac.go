package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// RBACFile is deploy/rbac.yaml, relative to the repository root.
const RBACFile = "deploy/rbac.yaml"

// CreateNamespacesRBACFile is the optional role that lets Paddock create a
// team's missing namespace (PADDOCK_CREATE_NAMESPACES), relative to the
// repository root.
const CreateNamespacesRBACFile = "deploy/rbac-create-namespaces.yaml"

// ApplyPaddockRBAC makes user hold exactly the permissions Paddock ships:
// it creates (or updates) every object in deploy/rbac.yaml as written —
// namespaces as needed, the ServiceAccount, ClusterRoles/Roles and their
// bindings — and for each ClusterRoleBinding/RoleBinding also a copy named
// "<name>:<user>" whose only subject is the User user. It waits until the
// authorizer grants user the first rule of each role.
//
// A config for user comes from ConfigFor(user); one for the ServiceAccount
// itself from ServiceAccountConfig.
func (e *Env) ApplyPaddockRBAC(ctx context.Context, user string) error {
	b, err := os.ReadFile(filepath.Join(e.RepoRoot, RBACFile))
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	return e.ApplyRBAC(ctx, b, user)
}

// ApplyRBACFile is ApplyPaddockRBAC for the manifest file (relative to the
// repository root), e.g. CreateNamespacesRBACFile on top of RBACFile.
func (e *Env) ApplyRBACFile(ctx context.Context, file, user string) error {
	b, err := os.ReadFile(filepath.Join(e.RepoRoot, file))
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	return e.ApplyRBAC(ctx, b, user)
}

// ApplyRBAC is ApplyPaddockRBAC for the RBAC manifests in manifest (a YAML
// stream of ServiceAccounts, ClusterRoles, Roles, ClusterRoleBindings and
// RoleBindings).
func (e *Env) ApplyRBAC(ctx context.Context, manifest []byte, user string) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	docs, err := decodeYAMLDocs(manifest)
	if err != nil {
		return fmt.Errorf("kubetest: rbac manifest: %w", err)
	}
	userSubject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}
	var checks []authorizationv1.ResourceAttributes
	for _, u := range docs {
		if ns := u.GetNamespace(); ns != "" {
			if err := ensureNamespace(ctx, cs, ns); err != nil {
				return err
			}
		}
		switch u.GetKind() {
		case "ServiceAccount":
			sa := &corev1.ServiceAccount{}
			if err := fromUnstructured(u.Object, sa); err != nil {
				return err
			}
			if _, err := cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("kubetest: create ServiceAccount %s/%s: %w", sa.Namespace, sa.Name, err)
			}
		case "ClusterRole":
			r := &rbacv1.ClusterRole{}
			if err := fromUnstructured(u.Object, r); err != nil {
				return err
			}
			if err := upsert(ctx, r.Name, func() error {
				_, err := cs.RbacV1().ClusterRoles().Create(ctx, r, metav1.CreateOptions{})
				return err
			}, func() error {
				old, err := cs.RbacV1().ClusterRoles().Get(ctx, r.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				old.Rules, old.AggregationRule = r.Rules, r.AggregationRule
				_, err = cs.RbacV1().ClusterRoles().Update(ctx, old, metav1.UpdateOptions{})
				return err
			}); err != nil {
				return err
			}
			checks = append(checks, firstRule(r.Rules, "")...)
		case "Role":
			r := &rbacv1.Role{}
			if err := fromUnstructured(u.Object, r); err != nil {
				return err
			}
			if err := upsert(ctx, r.Name, func() error {
				_, err := cs.RbacV1().Roles(r.Namespace).Create(ctx, r, metav1.CreateOptions{})
				return err
			}, func() error {
				old, err := cs.RbacV1().Roles(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				old.Rules = r.Rules
				_, err = cs.RbacV1().Roles(r.Namespace).Update(ctx, old, metav1.UpdateOptions{})
				return err
			}); err != nil {
				return err
			}
			checks = append(checks, firstRule(r.Rules, r.Namespace)...)
		case "ClusterRoleBinding":
			rb := &rbacv1.ClusterRoleBinding{}
			if err := fromUnstructured(u.Object, rb); err != nil {
				return err
			}
			mine := rb.DeepCopy()
			mine.Name = rb.Name + ":" + user
			mine.Subjects = []rbacv1.Subject{userSubject}
			for _, b := range []*rbacv1.ClusterRoleBinding{rb, mine} {
				if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("kubetest: create ClusterRoleBinding %s: %w", b.Name, err)
				}
			}
		case "RoleBinding":
			rb := &rbacv1.RoleBinding{}
			if err := fromUnstructured(u.Object, rb); err != nil {
				return err
			}
			mine := rb.DeepCopy()
			mine.Name = rb.Name + ":" + user
			mine.Subjects = []rbacv1.Subject{userSubject}
			for _, b := range []*rbacv1.RoleBinding{rb, mine} {
				if _, err := cs.RbacV1().RoleBindings(b.Namespace).Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("kubetest: create RoleBinding %s/%s: %w", b.Namespace, b.Name, err)
				}
			}
		default:
			return fmt.Errorf("kubetest: rbac manifest: unexpected %s %s", u.GetKind(), u.GetName())
		}
	}
	return waitAllowed(ctx, cs, user, checks)
}

func fromUnstructured(obj map[string]any, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, into, true)
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: create namespace %s: %w", name, err)
	}
	return nil
}

func upsert(_ context.Context, name string, create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		err = update()
	}
	if err != nil {
		return fmt.Errorf("kubetest: apply %s: %w", name, err)
	}
	return nil
}

// firstRule is what waitAllowed asks about: the first verb on the first
// resource of the first resource rule.
func firstRule(rules []rbacv1.PolicyRule, namespace string) []authorizationv1.ResourceAttributes {
	for _, r := range rules {
		if len(r.Verbs) == 0 || len(r.Resources) == 0 || len(r.APIGroups) == 0 {
			continue
		}
		return []authorizationv1.ResourceAttributes{{
			Namespace: namespace,
			Verb:      r.Verbs[0],
			Group:     r.APIGroups[0],
			Resource:  r.Resources[0],
		}}
	}
	return nil
}

// waitAllowed waits until the API server's authorizer (which learns of new
// roles and bindings through informers) grants user each of checks.
func waitAllowed(ctx context.Context, cs kubernetes.Interface, user string, checks []authorizationv1.ResourceAttributes) error {
	deadline := time.Now().Add(time.Minute)
	for _, attrs := range checks {
		for {
			sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               user,
					Groups:             []string{"system:authenticated"},
					ResourceAttributes: &attrs,
				},
			}, metav1.CreateOptions{})
			if err == nil && sar.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = errors.New(sar.Status.Reason)
				}
				return fmt.Errorf("kubetest: %s still may not %s %s.%s after 1m: %v", user, attrs.Verb, attrs.Resource, attrs.Group, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}
