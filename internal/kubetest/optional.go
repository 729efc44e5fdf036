package kubetest

import (
	"context"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The API groups of the CRDs a KubeVirt cluster may lack: CDI is a
// separate install, and many clusters run containerDisk VMs only; the
// VirtualMachinePool API is KubeVirt's but is not on every cluster.
const (
	GroupCDI   = "cdi.kubevirt.io"
	GroupPools = "pool.kubevirt.io"
)

// WithoutCDI leaves out CDI's CRDs (datavolumes, datasources), as on a
// cluster where CDI is not installed. With Controllers, the CDI CRDs
// virt-controller waits for (cdis, cdiconfigs, storageprofiles) are still
// installed: the cdi.kubevirt.io group is then served, without DataVolumes.
func WithoutCDI() Option { return func(o *options) { o.leaveOut(GroupCDI) } }

// WithoutPools leaves out the VirtualMachinePool CRD.
func WithoutPools() Option { return func(o *options) { o.leaveOut(GroupPools) } }

func (o *options) leaveOut(group string) {
	if o.leftOut == nil {
		o.leftOut = map[string]bool{}
	}
	o.leftOut[group] = true
}

// splitLeftOut returns the CRDs to install at start and those left out.
func (o *options) splitLeftOut(crds []*apiextensionsv1.CustomResourceDefinition) (install, left []*apiextensionsv1.CustomResourceDefinition) {
	for _, crd := range crds {
		if o.leftOut[crd.Spec.Group] {
			left = append(left, crd)
		} else {
			install = append(install, crd)
		}
	}
	return install, left
}

// InstallCRDs installs the CRDs of group that Start left out (WithoutCDI,
// WithoutPools), as a platform team installing CDI or the pool API on a
// running cluster would, and waits until they are established.
func (e *Env) InstallCRDs(ctx context.Context, group string) error {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range e.leftOut {
		if crd.Spec.Group == group {
			crds = append(crds, crd)
		}
	}
	if len(crds) == 0 {
		return fmt.Errorf("kubetest: no CRDs of %s were left out", group)
	}
	ext, err := apiextensionsclient.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd.DeepCopy(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kubetest: create CRD %s: %w", crd.Name, err)
		}
	}
	return waitEstablished(ctx, e.Config, crds)
}
