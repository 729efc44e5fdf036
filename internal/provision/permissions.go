package provision

// Permission is one API verb on one resource that the provisioner uses.
type Permission struct {
	Group, Resource, Verb string
}

// Permissions lists every call the provisioner and watcher make to the
// cluster. deploy/rbac.yaml must grant exactly these (a test checks both
// directions), and the provisioner's tests run as a user bound only to that
// role, so a call missing here fails there.
var Permissions = func() []Permission {
	var ps []Permission
	add := func(group, resource string, verbs ...string) {
		for _, v := range verbs {
			ps = append(ps, Permission{group, resource, v})
		}
	}
	// CreateVM, SetRunStrategy (patch), DeleteVM, the watcher's informer, dry-run pre-flight.
	add("kubevirt.io", "virtualmachines", "get", "list", "watch", "create", "update", "patch", "delete")
	// CreatePool, ScalePool and SetPoolRunStrategy (patch), DeletePool, the
	// watcher's informer. Members are VirtualMachines (above).
	add("pool.kubevirt.io", "virtualmachinepools", "get", "list", "watch", "create", "patch", "delete")
	// The watcher's informer; Restart deletes the instance.
	add("kubevirt.io", "virtualmachineinstances", "get", "list", "watch", "delete")
	// The watcher's informer (import progress); DeleteVM removes a request's DataVolumes.
	add("cdi.kubevirt.io", "datavolumes", "get", "list", "watch", "delete", "deletecollection")
	// Golden images that templates clone.
	add("cdi.kubevirt.io", "datasources", "get", "list", "watch")
	// Sizes that name instancetypes and preferences.
	add("instancetype.kubevirt.io", "virtualmachineclusterinstancetypes", "get", "list", "watch")
	add("instancetype.kubevirt.io", "virtualmachineclusterpreferences", "get", "list", "watch")
	// RecentEvents, for troubleshooting on the request page.
	add("", "events", "get", "list", "watch")
	// ensureNamespace (create only when configured to).
	add("", "namespaces", "get", "create")
	// No leases: every replica runs the watcher, and the store's conditional
	// updates make a second replica's identical observation a no-op.
	return ps
}()
