package kubetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestCRDsMatchReference compares the generated CRDs with the CRDs KubeVirt's
// operator and CDI themselves build, kept as reference files in
// testdata/kubevirt-crds (their origin is in SOURCE.md there). Descriptions
// and annotations are ignored; everything else (versions, subresources,
// printer columns, names, the schemas) must match.
func TestCRDsMatchReference(t *testing.T) {
	refs, err := filepath.Glob(filepath.Join("testdata", "kubevirt-crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) == 0 {
		t.Fatal("no reference CRDs in testdata/kubevirt-crds")
	}
	generated, err := embeddedCRDs()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, crd := range generated {
		byName[crd.Name] = crd
	}
	for _, ref := range refs {
		b, err := os.ReadFile(ref)
		if err != nil {
			t.Fatal(err)
		}
		want := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, want); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		t.Run(want.Name, func(t *testing.T) {
			got, ok := byName[want.Name]
			if !ok {
				t.Fatalf("no generated CRD %s", want.Name)
			}
			g, w := comparable(t, got), comparable(t, want)
			if diffs := diff("", w, g, nil); len(diffs) > 0 {
				if len(diffs) > 20 {
					diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
				}
				t.Errorf("%s differs from %s (want vs got):\n%s", want.Name, filepath.Base(ref), strings.Join(diffs, "\n"))
			}
		})
	}
}

// comparable turns crd into generic JSON without annotations or schema
// descriptions.
func comparable(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) map[string]any {
	t.Helper()
	c := crd.DeepCopy()
	c.Annotations = nil
	c.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, v := range m["spec"].(map[string]any)["versions"].([]any) {
		if s, ok := v.(map[string]any)["schema"]; ok {
			stripDescriptions(s, "")
		}
	}
	return m
}

// stripDescriptions removes "description" keywords from a schema, but not
// properties that happen to be named description.
func stripDescriptions(node any, parentKey string) {
	switch n := node.(type) {
	case map[string]any:
		if parentKey != "properties" {
			delete(n, "description")
		}
		for k, v := range n {
			stripDescriptions(v, k)
		}
	case []any:
		for _, v := range n {
			stripDescriptions(v, "")
		}
	}
}

// diff lists the paths at which want and got differ.
func diff(path string, want, got any, out []string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return append(out, fmt.Sprintf("%s: %T vs %T", path, want, got))
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !gok:
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
			case !wok:
				out = append(out, fmt.Sprintf("%s.%s: unexpected", path, k))
			default:
				out = diff(path+"."+k, wv, gv, out)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return append(out, fmt.Sprintf("%s: %d items vs %v", path, len(w), got))
		}
		for i := range w {
			out = diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], out)
		}
		return out
	default:
		if !reflect.DeepEqual(want, got) {
			out = append(out, fmt.Sprintf("%s: %v vs %v", path, want, got))
		}
		return out
	}
}
