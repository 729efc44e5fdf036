package web_test

import (
	"bytes"
	"context"
	"image/color"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/guestconsole"
	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/web"
)

// TestConsoleThroughTheAPIAggregatorOnRealVirtControllerWithNodeAndVirtAPIStandIns
// runs the whole path: a websocket to Paddock, Paddock's bridge, KubeVirt's
// client as the RBAC-bound provisioner, kube-apiserver's aggregator, and
// the stand-in for virt-api's console subresources (internal/kubetest),
// whose RFB server and login prompt play the guest. The instance is run by
// KubeVirt's own virt-controller, with kubelet and virt-handler stood in
// for (kubetest.Controllers). When the stand-in dies mid-session, the
// browser's websocket is closed with a reason it can show. The VM page's
// thumbnail (vnc/screenshot) takes the same path, without the websocket.
func TestConsoleThroughTheAPIAggregatorOnRealVirtControllerWithNodeAndVirtAPIStandIns(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and KubeVirt's controllers (run without -short)")
	}
	ctx := context.Background()
	kube, err := kubetest.Start(ctx, kubetest.Controllers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Stop() })
	const user = "paddock-web-console-test"
	if err := kube.ApplyPaddockRBAC(ctx, user); err != nil {
		t.Fatal(err)
	}
	standIn, err := kube.ServeConsoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := kube.ConfigFor(user)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := setupConsoleOn(setup(t, web.Config{}), web.Config{}, cluster)
	admin, err := provision.NewKubernetesCluster(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.req.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server admits virt-launcher's pod once the namespace's
	// default ServiceAccount exists (kube-controller-manager makes it).
	waitUpTo(t, time.Minute, "the namespace's default ServiceAccount", func() bool {
		_, err := admin.Kube.CoreV1().ServiceAccounts(e.req.Namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	vmis := admin.Virt.KubevirtV1().VirtualMachineInstances(e.req.Namespace)
	_, err = vmis.Create(ctx, &virtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: e.req.Name},
		Spec: virtv1.VirtualMachineInstanceSpec{
			Domain: virtv1.DomainSpec{
				Devices:   virtv1.Devices{Disks: []virtv1.Disk{{Name: "root", DiskDevice: virtv1.DiskDevice{Disk: &virtv1.DiskTarget{Bus: virtv1.DiskBusVirtio}}}}},
				Resources: virtv1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
			},
			Volumes: []virtv1.Volume{{Name: "root", VolumeSource: virtv1.VolumeSource{
				ContainerDisk: &virtv1.ContainerDiskSource{Image: "quay.io/kubevirt/cirros-container-disk-demo"}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// virt-controller makes its launcher pod; the stand-ins for kubelet
	// and virt-handler run them.
	waitUpTo(t, time.Minute, "the instance Running", func() bool {
		vmi, err := vmis.Get(ctx, e.req.Name, metav1.GetOptions{})
		return err == nil && vmi.Status.Phase == virtv1.Running
	})

	// The thumbnail: the stand-in's screen as PNG, through the aggregator.
	shot := e.screenshotAs("developer", e.screenshotPath())
	if shot.status != http.StatusOK || shot.ctype != "image/png" || shot.cache != "no-store" {
		t.Fatalf("screenshot: %d %q %q, want 200 image/png no-store", shot.status, shot.ctype, shot.cache)
	}
	if img, err := png.Decode(bytes.NewReader(shot.body)); err != nil || color.RGBAModel.Convert(img.At(5, 5)) != kubetest.ConsoleColour {
		t.Errorf("screenshot: %v; want the stand-in's %v", err, kubetest.ConsoleColour)
	}
	if standIn.Screenshots() != 1 {
		t.Errorf("the stand-in served %d screenshots, want 1", standIn.Screenshots())
	}
	if s := e.screenshotAs("outsider", e.screenshotPath()); s.status != http.StatusNotFound || standIn.Screenshots() != 1 {
		t.Errorf("another team's screenshot: %d (the stand-in served %d), want 404 before the cluster is asked", s.status, standIn.Screenshots())
	}

	ws, resp, err := e.dial("developer", e.socket("vnc"), e.srv.URL)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	v, err := guestconsole.Dial(&wsConn{ws: ws})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != e.req.Name {
		t.Errorf("desktop name %q, want %q", v.Name, e.req.Name)
	}
	if px, err := v.Frame(5, 5); err != nil || px != kubetest.ConsoleColour {
		t.Errorf("pixel %v, %v; want the stand-in's %v", px, err, kubetest.ConsoleColour)
	}
	ws.Close()

	serial, _, err := e.dial("developer", e.socket("serial"), e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsConn{ws: serial}
	readUntil(t, c, e.req.Name+" login: ")
	if _, err := c.Write([]byte("dev\r")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, "dev\r\nPassword: ")
	standIn.Kill()
	if code, text := closeOf(t, serial); code != 4005 || !strings.Contains(text, "lost") {
		t.Errorf("after the stand-in died: closed with %d %q, want 4005 lost", code, text)
	}
	// With virt-api gone the page's thumbnail says there is no picture.
	if s := e.screenshotAs("developer", e.screenshotPath()); s.status != http.StatusServiceUnavailable || s.ctype != "image/svg+xml" {
		t.Errorf("screenshot with the stand-in dead: %d %q, want 503 with the placeholder", s.status, s.ctype)
	}
	waitFor(t, func() bool { return e.auditCount(store.AuditConsoleSession) == 2 })
	var toVM, fromVM float64
	if err := e.st.Pool().QueryRow(ctx, `SELECT (details->>'bytes_to_vm')::float8, (details->>'bytes_from_vm')::float8
		FROM audit_log WHERE action = $1 AND details->>'console' = 'console'`, store.AuditConsoleSession).Scan(&toVM, &fromVM); err != nil {
		t.Fatal(err)
	}
	if toVM != 4 || fromVM < float64(len(e.req.Name+" login: dev\r\nPassword: ")) {
		t.Errorf("serial session audited %v bytes to the VM (want 4, \"dev\\r\"), %v from it", toVM, fromVM)
	}
}
