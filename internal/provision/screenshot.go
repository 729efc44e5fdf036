package provision

import (
	"context"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	virtv1 "kubevirt.io/api/core/v1"
)

// Screenshot returns a PNG of what the instance ns/name shows on its
// screen: on a real cluster from KubeVirt's vnc/screenshot subresource
// (/apis/subresources.kubevirt.io/v1/.../virtualmachineinstances/{name}/vnc/screenshot,
// which virt-api serves behind the API server's aggregator); on the
// simulated cluster the synthetic screen its VNC console draws. A VM that
// is not running gives ErrNotRunning; a cluster that cannot take one,
// ErrConsoleUnavailable.
func (c *Cluster) Screenshot(ctx context.Context, ns, name string) ([]byte, error) {
	vmi, err := c.runningInstance(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	if c.Simulated || c.rest == nil {
		b, err := SimulatedScreen(vmi).PNG()
		if err != nil {
			return nil, fmt.Errorf("screenshot of %s/%s: %w", ns, name, err)
		}
		return b, nil
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	// MoveCursor stays off: a thumbnail must not wake a screen saver or
	// move the pointer of someone working in the console.
	b, err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).Screenshot(cctx, name, &virtv1.ScreenshotOptions{})
	if err != nil {
		return nil, screenshotError(ns, name, err)
	}
	if len(b) == 0 || http.DetectContentType(b) != "image/png" {
		return nil, fmt.Errorf("screenshot of %s/%s: the answer is not a PNG: %w", ns, name, ErrConsoleUnavailable)
	}
	return b, nil
}

// screenshotError sorts virt-api's refusals as consoleError does: the
// instance went, or is not (yet) running where virt-handler can see it.
func screenshotError(ns, name string, err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsConflict(err) {
		return fmt.Errorf("screenshot of %s/%s: %w: %w", ns, name, err, ErrNotRunning)
	}
	return fmt.Errorf("screenshot of %s/%s: %w: %w", ns, name, err, ErrConsoleUnavailable)
}
