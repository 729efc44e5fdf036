// Package deploy holds Paddock's Kustomize manifests; its test checks that
// they parse, that the Deployment is production-shaped, and that the RBAC is
// narrow. Whether the RBAC grants exactly what the provisioner uses is
// checked by internal/provision's tests, against the requests its
// real-cluster tests made (the test API server's audit log).
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// load decodes every object of every resource in kustomization.yaml, strictly.
func load(t *testing.T) (kustomization, []runtime.Object) {
	t.Helper()
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var objs []runtime.Object
	for _, f := range k.Resources {
		objs = append(objs, decodeFile(t, f)...)
	}
	return k, objs
}

// decodeFile decodes every object of the manifest file f, strictly.
func decodeFile(t *testing.T, f string) []runtime.Object {
	t.Helper()
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatalf("resource %s: %v", f, err)
	}
	var objs []runtime.Object
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := dec.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(j, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// Strict: re-encoding must not lose fields (catches typos in field names).
		var generic, typed map[string]any
		_ = yaml.Unmarshal(j, &generic)
		tj, _ := yaml.Marshal(obj)
		_ = yaml.Unmarshal(tj, &typed)
		if missing := lostKeys(generic, typed, ""); len(missing) > 0 {
			t.Errorf("%s: unknown fields %v", f, missing)
		}
		objs = append(objs, obj)
	}
	return objs
}

func lostKeys(a, b map[string]any, prefix string) []string {
	var out []string
	for k, v := range a {
		bv, ok := b[k]
		if !ok {
			if k == "status" || k == "creationTimestamp" {
				continue
			}
			out = append(out, prefix+k)
			continue
		}
		if am, ok := v.(map[string]any); ok {
			if bm, ok := bv.(map[string]any); ok {
				out = append(out, lostKeys(am, bm, prefix+k+".")...)
			}
		}
	}
	return out
}

func TestManifests(t *testing.T) {
	k, objs := load(t)
	if k.Namespace != "paddock" || len(k.Images) != 1 || k.Images[0].NewName == "" {
		t.Errorf("kustomization: %+v", k)
	}
	var dep *appsv1.Deployment
	var pdb *policyv1.PodDisruptionBudget
	var svc *corev1.Service
	var sa *corev1.ServiceAccount
	var cm *corev1.ConfigMap
	var secret *corev1.Secret
	var role *rbacv1.ClusterRole
	var binding *rbacv1.ClusterRoleBinding
	for _, o := range objs {
		switch v := o.(type) {
		case *appsv1.Deployment:
			dep = v
		case *policyv1.PodDisruptionBudget:
			pdb = v
		case *corev1.Service:
			svc = v
		case *corev1.ServiceAccount:
			sa = v
		case *corev1.ConfigMap:
			cm = v
		case *corev1.Secret:
			secret = v
		case *rbacv1.ClusterRole:
			role = v
		case *rbacv1.ClusterRoleBinding:
			binding = v
		}
	}
	if dep == nil || pdb == nil || svc == nil || sa == nil || cm == nil || secret == nil || role == nil || binding == nil {
		t.Fatalf("missing objects: dep=%v pdb=%v svc=%v sa=%v cm=%v secret=%v role=%v binding=%v",
			dep != nil, pdb != nil, svc != nil, sa != nil, cm != nil, secret != nil, role != nil, binding != nil)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Error("the Deployment should run 2 replicas")
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("pod runs as %q, the RBAC is for %q", pod.ServiceAccountName, sa.Name)
	}
	if binding.Subjects[0].Name != sa.Name || binding.RoleRef.Name != role.Name {
		t.Error("the binding does not bind the ServiceAccount to the role")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod must run as non-root")
	}
	c := pod.Containers[0]
	if c.Image == "" || c.Image != k.Images[0].Name {
		t.Errorf("container image %q is not the kustomize image %q", c.Image, k.Images[0].Name)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("readiness probe must be /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("liveness probe must be /healthz")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("resource requests must be set")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container needs a read-only root filesystem and no privilege escalation")
	}
	if !slices.ContainsFunc(c.EnvFrom, func(e corev1.EnvFromSource) bool { return e.ConfigMapRef != nil && e.ConfigMapRef.Name == cm.Name }) ||
		!slices.ContainsFunc(c.EnvFrom, func(e corev1.EnvFromSource) bool { return e.SecretRef != nil && e.SecretRef.Name == secret.Name }) {
		t.Error("configuration must come from the ConfigMap and the Secret")
	}
	if _, ok := secret.StringData["DATABASE_URL"]; !ok {
		t.Error("the Secret must carry DATABASE_URL")
	}
	for k := range cm.Data {
		if !strings.HasPrefix(k, "PADDOCK_") {
			t.Errorf("ConfigMap key %s is not a Paddock setting", k)
		}
	}
	// Prometheus scrapes the port the metrics listener is configured on.
	metricsPort := strings.TrimPrefix(cm.Data["PADDOCK_METRICS_ADDR"], ":")
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return p.Name == "metrics" && fmt.Sprint(p.ContainerPort) == metricsPort
	}) || dep.Spec.Template.Annotations["prometheus.io/port"] != metricsPort {
		t.Errorf("PADDOCK_METRICS_ADDR %q needs a container port named metrics and the prometheus.io/port annotation",
			cm.Data["PADDOCK_METRICS_ADDR"])
	}
	labels := dep.Spec.Template.Labels
	for name, sel := range map[string]map[string]string{"pdb": pdb.Spec.Selector.MatchLabels, "service": svc.Spec.Selector} {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %s=%s does not match the pods", name, k, v)
			}
		}
	}
}

// TestRBACIsNarrow: no rule of the shipped roles uses a wildcard, and
// creating namespaces is only in the optional role, which is not deployed
// by default and binds the same ServiceAccount as the default role.
func TestRBACIsNarrow(t *testing.T) {
	k, objs := load(t)
	const optional = "rbac-create-namespaces.yaml"
	if slices.Contains(k.Resources, optional) {
		t.Errorf("%s is in kustomization.yaml; it is optional", optional)
	}
	grants := func(objs []runtime.Object) (map[string]bool, []*rbacv1.ClusterRoleBinding) {
		granted := map[string]bool{}
		var bindings []*rbacv1.ClusterRoleBinding
		for _, o := range objs {
			switch v := o.(type) {
			case *rbacv1.ClusterRole:
				for _, r := range v.Rules {
					if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
						t.Errorf("%s: rule %+v names resources or URLs", v.Name, r)
					}
					for _, g := range r.APIGroups {
						for _, res := range r.Resources {
							for _, verb := range r.Verbs {
								if g == "*" || strings.Contains(res, "*") || verb == "*" {
									t.Errorf("%s: wildcard in rule %+v", v.Name, r)
								}
								granted[fmt.Sprintf("%s %s.%s", verb, res, g)] = true
							}
						}
					}
				}
			case *rbacv1.Role:
				t.Errorf("Role %s: Paddock's roles are ClusterRoles (teams' namespaces are not known in advance)", v.Name)
			case *rbacv1.ClusterRoleBinding:
				bindings = append(bindings, v)
			}
		}
		return granted, bindings
	}
	base, baseBindings := grants(objs)
	if base["create namespaces."] {
		t.Error("the default ClusterRole may create namespaces; that belongs in " + optional)
	}
	extra, extraBindings := grants(decodeFile(t, optional))
	if len(extra) != 1 || !extra["create namespaces."] {
		t.Errorf("%s grants %v, want only create namespaces", optional, extra)
	}
	if len(baseBindings) != 1 || len(extraBindings) != 1 ||
		!slices.Equal(baseBindings[0].Subjects, extraBindings[0].Subjects) {
		t.Errorf("%s does not bind the ServiceAccount rbac.yaml binds", optional)
	}
}
