package provision_test

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"image/png"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	virtfake "kubevirt.io/client-go/kubevirt/fake"

	"paddock/internal/provision"
)

// checkScreenshot decodes a screenshot and checks its size and the colour
// of its pixel (5, 5).
func checkScreenshot(t *testing.T, b []byte, width, height int, want color.RGBA) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if got := img.Bounds(); got.Dx() != width || got.Dy() != height {
		t.Errorf("screenshot %dx%d, want %dx%d", got.Dx(), got.Dy(), width, height)
	}
	if got := color.RGBAModel.Convert(img.At(5, 5)); got != want {
		t.Errorf("screenshot pixel (5,5) %v, want %v", got, want)
	}
}

// TestSimulatedScreenshotIsTheConsoleScreen: on the simulated cluster the
// screenshot is the screen its VNC console draws (the VM's name and
// status), and a VM that does not run has none.
func TestSimulatedScreenshotIsTheConsoleScreen(t *testing.T) {
	ctx := context.Background()
	cluster := &provision.Cluster{Virt: virtfake.NewSimpleClientset(), Simulated: true}
	vmis := cluster.Virt.KubevirtV1().VirtualMachineInstances("payments")
	vmi := &virtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "vm-sim", Namespace: "payments"},
		Status: virtv1.VirtualMachineInstanceStatus{Phase: virtv1.Scheduling}}
	if _, err := vmis.Create(ctx, vmi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Screenshot(ctx, "payments", "vm-sim"); !errors.Is(err, provision.ErrNotRunning) {
		t.Errorf("screenshot of a scheduling VM: %v, want ErrNotRunning", err)
	}
	vmi.Status.Phase = virtv1.Running
	if _, err := vmis.Update(ctx, vmi, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := cluster.Screenshot(ctx, "payments", "vm-sim")
	if err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, b, 640, 400, color.RGBA{R: 0x1b, G: 0x26, B: 0x3b, A: 255})
	want, err := provision.SimulatedScreen(vmi).PNG()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Error("the screenshot differs from the simulated console's screen")
	}
}
