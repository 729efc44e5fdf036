package kubetest

import (
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// TestLeftOutCRDs checks which of the generated CRDs WithoutCDI and
// WithoutPools leave out (installing them later on a real API server is
// tested in internal/provision).
func TestLeftOutCRDs(t *testing.T) {
	all, err := embeddedCRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts []Option
		left []string
	}{
		{"everything", nil, nil},
		{"without CDI", []Option{WithoutCDI()}, []string{"datasources.cdi.kubevirt.io", "datavolumes.cdi.kubevirt.io"}},
		{"without pools", []Option{WithoutPools()}, []string{"virtualmachinepools.pool.kubevirt.io"}},
		{"KubeVirt alone", []Option{WithoutCDI(), WithoutPools()},
			[]string{"datasources.cdi.kubevirt.io", "datavolumes.cdi.kubevirt.io", "virtualmachinepools.pool.kubevirt.io"}},
	} {
		var o options
		for _, opt := range c.opts {
			opt(&o)
		}
		install, left := o.splitLeftOut(all)
		var names []string
		for _, crd := range left {
			names = append(names, crd.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, c.left) || len(install)+len(left) != len(all) {
			t.Errorf("%s: left out %v (installing %d of %d), want %v", c.name, names, len(install), len(all), c.left)
		}
		if !slices.ContainsFunc(install, func(crd *apiextensionsv1.CustomResourceDefinition) bool {
			return crd.Name == "virtualmachines.kubevirt.io"
		}) {
			t.Errorf("%s: KubeVirt's VirtualMachine CRD is left out", c.name)
		}
	}
}
