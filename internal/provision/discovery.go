package provision

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"paddock/internal/store"
)

// APIs says which of the APIs Paddock can do without the cluster serves.
// KubeVirt's own kubevirt.io/v1 is not among them: without it there is
// nothing to provision. CDI (cdi.kubevirt.io) and the VirtualMachinePool
// API (pool.kubevirt.io) are installed separately on many clusters, or not
// at all: a cluster with containerDisk VMs only is common.
type APIs struct {
	// Known is set once the cluster has been asked; until then nothing is
	// refused for lack of an API.
	Known bool
	// DataVolumes is cdi.kubevirt.io/v1beta1 datavolumes.
	DataVolumes bool
	// Pools is pool.kubevirt.io/v1beta1 virtualmachinepools.
	Pools bool
}

// AllAPIs is what the simulated cluster serves: everything.
var AllAPIs = APIs{Known: true, DataVolumes: true, Pools: true}

// Missing names the components the cluster lacks, for logs ("" for none).
func (a APIs) Missing() string {
	var m []string
	if !a.DataVolumes {
		m = append(m, "CDI DataVolumes")
	}
	if !a.Pools {
		m = append(m, "VirtualMachinePools")
	}
	return strings.Join(m, ", ")
}

// Lacks returns, at the field a developer would change, the components the
// cluster lacks to run template spec (as a pool when pool is set), each
// named in a sentence for the developer; nil when it lacks none, or while
// the APIs are not known yet.
func (a APIs) Lacks(spec store.TemplateSpec, pool bool) []store.FieldError {
	if !a.Known {
		return nil
	}
	var lacks []store.FieldError
	if !a.DataVolumes && spec.Image.ContainerDisk == "" {
		how := "to import its disk"
		if ds := spec.Image.DataSource; ds != nil {
			how = "to clone its disk from the image " + ds.Namespace + "/" + ds.Name
		}
		lacks = append(lacks, store.FieldError{Field: "template", Message: fmt.Sprintf(
			"This cluster has no CDI (Containerized Data Importer), which template %s needs %s; "+
				"choose a template with a container disk, or ask the platform team to install CDI.", spec.Name, how)})
	}
	if !a.Pools && pool {
		lacks = append(lacks, store.FieldError{Field: "replicas", Message: "This cluster has no VirtualMachinePool API " +
			"(KubeVirt's pool.kubevirt.io), which a pool of VMs needs; request single VMs, or ask the platform team to enable VM pools."})
	}
	return lacks
}

// ServedAPIs asks the API server which of the optional APIs it serves. It
// fails when it cannot tell, or when the cluster does not serve KubeVirt's
// VirtualMachines at all. The simulated cluster serves everything.
func (c *Cluster) ServedAPIs(ctx context.Context) (APIs, error) {
	if c.Simulated {
		return AllAPIs, nil
	}
	has := func(group, version, resource string) (bool, error) {
		ctx, cancel := c.callCtx(ctx)
		defer cancel()
		list := &metav1.APIResourceList{}
		err := c.Kube.Discovery().RESTClient().Get().AbsPath("/apis", group, version).Do(ctx).Into(list)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("discover %s/%s: %w", group, version, err)
		}
		for _, r := range list.APIResources {
			if r.Name == resource {
				return true, nil
			}
		}
		return false, nil
	}
	virt, err := has("kubevirt.io", "v1", "virtualmachines")
	if err != nil {
		return APIs{}, err
	}
	if !virt {
		return APIs{}, fmt.Errorf("the cluster serves no kubevirt.io/v1 virtualmachines: KubeVirt is not installed")
	}
	a := APIs{Known: true}
	if a.DataVolumes, err = has("cdi.kubevirt.io", "v1beta1", "datavolumes"); err != nil {
		return APIs{}, err
	}
	if a.Pools, err = has("pool.kubevirt.io", "v1beta1", "virtualmachinepools"); err != nil {
		return APIs{}, err
	}
	return a, nil
}
