// Package served lists the virt-api admission webhook paths that the
// kubevirt-webhooks server serves. The manifest generator keeps exactly the
// webhooks of KubeVirt's own webhook configurations whose path is in this list,
// so the server and the registered configurations cannot drift apart.
package served

import "kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"

// MutatingPaths are served by mutating handlers.
var MutatingPaths = []string{
	components.VMMutatePath, // virtualmachines-mutator.kubevirt.io
}

// ValidatingPaths are served by validating handlers.
var ValidatingPaths = []string{
	components.VMValidatePath,                    // virtualmachine-validator.kubevirt.io
	components.VMPoolValidatePath,                // virtualmachinepool-validator.kubevirt.io
	components.StatusValidatePath,                // kubevirt-crd-status-validator.kubevirt.io (virtualmachines/status)
	components.VMInstancetypeValidatePath,        // virtualmachineinstancetype-validator.instancetype.kubevirt.io
	components.VMClusterInstancetypeValidatePath, // virtualmachineclusterinstancetype-validator.instancetype.kubevirt.io
	components.VMPreferenceValidatePath,          // virtualmachinepreference-validator.instancetype.kubevirt.io
	components.VMClusterPreferenceValidatePath,   // virtualmachineclusterpreference-validator.instancetype.kubevirt.io
}

// Contains reports whether p is one of paths.
func Contains(paths []string, p string) bool {
	for _, x := range paths {
		if x == p {
			return true
		}
	}
	return false
}
