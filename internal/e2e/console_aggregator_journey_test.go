package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
)

// thumbnailPixel draws the VM page's thumbnail on a canvas and reads its
// pixel (5,5) as hex; empty until the picture has loaded.
const thumbnailPixel = `(() => {
	const img = document.querySelector('[data-testid=vm-thumbnail]');
	if (!img || !img.complete || img.naturalWidth === 0) return '';
	const c = document.createElement('canvas');
	c.width = img.naturalWidth; c.height = img.naturalHeight;
	const g = c.getContext('2d');
	g.drawImage(img, 0, 0);
	const d = g.getImageData(5, 5, 1, 1).data;
	return [d[0], d[1], d[2]].map(v => v.toString(16).padStart(2, '0')).join('');
})()`

// TestConsoleInBrowserThroughAggregator_RealVirtController_StandInVirtAPI:
// the whole console path in a browser, with KubeVirt's own virt-controller
// and only the node-level parts and virt-api (and the guest behind it)
// played by stand-ins. Paddock (`portal dev`) runs against the real test
// kube-apiserver as a user bound to exactly deploy/rbac.yaml; a developer
// requests a VM in the browser, Paddock creates it, KubeVirt v1.8.0's
// virt-controller makes its instance and launcher pod, which the kubelet
// and virt-handler stand-ins (kubetest.Controllers) run with an IP; the
// consoles and the thumbnail go Paddock → kube-apiserver's aggregator
// (APIService v1.subresources.kubevirt.io) → the stand-in's RFB server and
// login prompt (internal/kubetest). The stand-in is then killed under an
// open serial console: the page says the connection was lost and offers
// Reconnect, which then says the cluster did not open the console.
func TestConsoleInBrowserThroughAggregator_RealVirtController_StandInVirtAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("browser journey on kube-apiserver: skipped in -short mode")
	}
	ctx := context.Background()
	started := time.Now()
	kube, err := kubetest.Start(ctx, kubetest.Controllers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Stop() })
	const user = "paddock-e2e-console"
	if err := kube.ApplyPaddockRBAC(ctx, user); err != nil {
		t.Fatal(err)
	}
	standIn, err := kube.ServeConsoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standIn.Kill)
	admin, err := provision.NewKubernetesCluster(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	// `portal dev` seeds team payments with the namespace payments.
	const ns = "payments"
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := kube.Kubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	// The API server admits virt-launcher's pod only once the namespace's
	// default ServiceAccount exists; kube-controller-manager makes it.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, err := admin.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s has no default ServiceAccount: %v", ns, err)
		}
	}
	t.Logf("kube-apiserver, etcd, KubeVirt's webhooks, virt-controller, kube-controller-manager, the node stand-ins and the virt-api stand-in up in %s",
		time.Since(started).Round(100*time.Millisecond))

	j := newJourneyWith(t, "KUBECONFIG="+kcPath, "PADDOCK_CLUSTER=kubernetes", "PADDOCK_WATCH_NAMESPACE="+ns)

	key := newSSHKey(t)
	const vmName = "e2e-aggregated"
	var reqPath string

	j.step("signed-in", func(ctx context.Context) error {
		return j.signIn(ctx, "developer", "Dana Developer")
	})

	j.step("running", func(ctx context.Context) error {
		if _, err := j.open(ctx, "/requests/new?template=ubuntu-2404"); err != nil {
			return err
		}
		p, err := submitRequest(ctx, vmName, key)
		if err != nil {
			return err
		}
		reqPath = p
		_, err = waitLive(ctx, "running")
		return err
	})

	j.step("thumbnail", func(ctx context.Context) error {
		// The stand-in's screen, as vnc/screenshot through the aggregator,
		// then fetched again by the page's refresh.
		if err := waitUntil(ctx, "the thumbnail of the stand-in's screen", thumbnailPixel+` === '2e8b57'`); err != nil {
			px, _ := eval[string](ctx, thumbnailPixel)
			return fmt.Errorf("%w; pixel (5,5) is %q", err, px)
		}
		if err := waitUntil(ctx, "the thumbnail to refresh", `Number(document.querySelector('[data-testid=vm-thumbnail]').dataset.screenLoads || 0) >= 1`); err != nil {
			return err
		}
		if n := standIn.Screenshots(); n < 2 {
			return fmt.Errorf("the stand-in served %d screenshots, want the first and a refresh", n)
		}
		return nil
	})

	j.step("screen", func(ctx context.Context) error {
		resp, err := clickAndLoad(ctx, "[data-testid=open-console]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/requests/\d+/console/vnc$`)); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the console to connect", `document.getElementById('console')?.dataset.consoleState === 'connected'`); err != nil {
			state, _, _ := text(ctx, "[data-testid=console-state]")
			return fmt.Errorf("%w; the page says %q", err, state)
		}
		if err := waitUntil(ctx, "the desktop name", fmt.Sprintf(`document.querySelector('[data-testid=console-desktop]').textContent === %s`, js(vmName))); err != nil {
			return err
		}
		// The stand-in's screen colour, as noVNC drew it from RFB.
		if err := waitUntil(ctx, "the screen on the canvas", consoleScreenPixel+` === '2e8b57'`); err != nil {
			px, _ := eval[string](ctx, consoleScreenPixel)
			return fmt.Errorf("%w; pixel (5,5) is %q", err, px)
		}
		return nil
	})

	j.step("serial", func(ctx context.Context) error {
		if _, err := j.open(ctx, reqPath+"/console/serial"); err != nil {
			return err
		}
		rows := `(document.querySelector('.xterm-rows')?.textContent ?? '')`
		if err := waitUntil(ctx, "the login prompt", rows+`.includes(`+js(vmName+" login:")+`)`); err != nil {
			got, _ := eval[string](ctx, rows)
			return fmt.Errorf("%w; the terminal shows %q", err, got)
		}
		if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(".xterm-helper-textarea"))); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: "dana"}); err != nil {
			return err
		}
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			enter := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, enter); err != nil {
				return err
			}
		}
		if err := waitUntil(ctx, "the echo and the password prompt", rows+`.includes('login: dana') && `+rows+`.includes('Password:')`); err != nil {
			got, _ := eval[string](ctx, rows)
			return fmt.Errorf("%w; the terminal shows %q", err, got)
		}
		return nil
	})

	j.step("stand-in-killed", func(ctx context.Context) error {
		standIn.Kill()
		if err := waitUntil(ctx, "the page to say the console was lost", `document.getElementById('console').dataset.consoleState === 'lost' && !document.querySelector('[data-testid=console-reconnect]').hidden`); err != nil {
			state, _, _ := text(ctx, "[data-testid=console-state]")
			return fmt.Errorf("%w; the page says %q", err, state)
		}
		if msg, _, _ := text(ctx, "[data-testid=console-state]"); !strings.Contains(msg, "lost") {
			return fmt.Errorf("the page says %q", msg)
		}
		// virt-api is still gone: the aggregator cannot reach it.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("[data-testid=console-reconnect]"))); err != nil {
			return err
		}
		if err := waitUntil(ctx, "the page to say the cluster did not open the console", `document.getElementById('console').dataset.consoleState === 'unavailable' && !document.querySelector('[data-testid=console-reconnect]').hidden`); err != nil {
			state, _, _ := text(ctx, "[data-testid=console-state]")
			return fmt.Errorf("%w; the page says %q", err, state)
		}
		return nil
	})
}
