package kubetest

import (
	"encoding/json"
	"testing"
)

// TestKubevirtSubresourceNamesTheCallAsRBACDoes: the API server records a
// screenshot as subresource "vnc"; RBAC rules (KubeVirt's and Paddock's)
// name it vnc/screenshot, and the comparison with deploy/rbac.yaml must too.
func TestKubevirtSubresourceNamesTheCallAsRBACDoes(t *testing.T) {
	for _, tc := range []struct{ event, want string }{
		{`{"requestURI":"/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm-1/vnc/screenshot?moveCursor=false",
			"objectRef":{"apiGroup":"subresources.kubevirt.io","resource":"virtualmachineinstances","name":"vm-1","subresource":"vnc"}}`, "vnc/screenshot"},
		{`{"requestURI":"/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm-1/vnc",
			"objectRef":{"apiGroup":"subresources.kubevirt.io","resource":"virtualmachineinstances","name":"vm-1","subresource":"vnc"}}`, "vnc"},
		{`{"requestURI":"/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm-1/console",
			"objectRef":{"apiGroup":"subresources.kubevirt.io","resource":"virtualmachineinstances","name":"vm-1","subresource":"console"}}`, "console"},
		// Other groups keep what the API server recorded.
		{`{"requestURI":"/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/vm-1/status",
			"objectRef":{"apiGroup":"kubevirt.io","resource":"virtualmachines","name":"vm-1","subresource":"status"}}`, "status"},
	} {
		var ev auditEvent
		if err := json.Unmarshal([]byte(tc.event), &ev); err != nil {
			t.Fatal(err)
		}
		if got := kubevirtSubresource(ev); got != tc.want {
			t.Errorf("%s: %q, want %q", ev.RequestURI, got, tc.want)
		}
	}
}
