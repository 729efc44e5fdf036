package kubetest

import (
	"strings"
	"testing"
)

// TestStandInNodePullsAsContainerdAnswers: the stand-in node's pulls fail
// with containerd's words for an unresolvable registry and for an image its
// registry does not have (named "broken", or not pushed yet until it is),
// and succeed for any other image, tag or no tag.
func TestStandInNodePullsAsContainerdAnswers(t *testing.T) {
	e := &Env{}
	e.ImageNotPushed("quay.io/containerdisks/ubuntu:24.04-v2")
	e.ImageNotPushed("quay.io/example/untagged")
	cases := []struct {
		image, want string
	}{
		{"quay.io/containerdisks/ubuntu:24.04", ""},
		{"quay.io/containerdisks/ubuntu", ""},
		{"registry.invalid/paddock/missing:1", `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid/paddock/missing:1": ` +
			`failed to resolve reference "registry.invalid/paddock/missing:1": failed to do request: ` +
			`Head "https://registry.invalid/v2/paddock/missing/manifests/1": dial tcp: lookup registry.invalid: no such host`},
		{"quay.io/example/broken-image", `rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/example/broken-image:latest": ` +
			`failed to resolve reference "quay.io/example/broken-image:latest": quay.io/example/broken-image:latest: not found`},
		{"quay.io/containerdisks/ubuntu:24.04-v2", `rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/containerdisks/ubuntu:24.04-v2": ` +
			`failed to resolve reference "quay.io/containerdisks/ubuntu:24.04-v2": quay.io/containerdisks/ubuntu:24.04-v2: not found`},
		{"quay.io/example/untagged:latest", "quay.io/example/untagged:latest: not found"},
	}
	for _, c := range cases {
		err := e.registries.pull(c.image)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want a pull", c.image, err)
		case c.want != "" && (err == nil || !strings.HasSuffix(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.image, err, c.want)
		}
	}
	e.ImagePushed("quay.io/containerdisks/ubuntu:24.04-v2")
	if err := e.registries.pull("quay.io/containerdisks/ubuntu:24.04-v2"); err != nil {
		t.Errorf("after the push: %v", err)
	}
}
