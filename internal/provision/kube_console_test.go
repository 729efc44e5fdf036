package provision_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/guestconsole"
	"paddock/internal/kubetest"
	"paddock/internal/provision"
)

// runningInstance creates a VirtualMachineInstance ns/name and writes it a
// Running status, as virt-controller and virt-handler would.
func runningInstance(t *testing.T, env *kubetest.Env, ns, name string) {
	t.Helper()
	ctx := context.Background()
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	vmis := admin.Virt.KubevirtV1().VirtualMachineInstances(ns)
	vmi := &virtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: virtv1.VirtualMachineInstanceSpec{
			Domain: virtv1.DomainSpec{
				Devices:   virtv1.Devices{Disks: []virtv1.Disk{{Name: "root", DiskDevice: virtv1.DiskDevice{Disk: &virtv1.DiskTarget{Bus: virtv1.DiskBusVirtio}}}}},
				Resources: virtv1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
			},
			Volumes: []virtv1.Volume{{Name: "root", VolumeSource: virtv1.VolumeSource{
				ContainerDisk: &virtv1.ContainerDiskSource{Image: "quay.io/kubevirt/cirros-container-disk-demo"}}}},
		},
	}
	created, err := vmis.Create(ctx, vmi, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Phase = virtv1.Running
	if _, err := vmis.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKubeConsoleThroughTheAggregatorToTheVirtAPIStandIn opens a VM's consoles as the
// RBAC-bound provisioner, through the API server's aggregator, to the
// stand-in for virt-api and virt-handler: KubeVirt's client, the upgrade
// with plain.kubevirt.io and the proxying are real; the guest is the
// stand-in's RFB server and login prompt.
func TestKubeConsoleThroughTheAggregatorToTheVirtAPIStandIn(t *testing.T) {
	env := realCluster(t)
	ctx := context.Background()
	standIn, err := env.ServeConsoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer standIn.Kill()
	ns, err := env.CreateNamespace(ctx, "console")
	if err != nil {
		t.Fatal(err)
	}
	runningInstance(t, env, ns, "vm-1")
	cfg, err := env.ConfigFor(provisionerUser)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}

	vnc, err := cluster.OpenConsole(ctx, ns, "vm-1", provision.ConsoleVNC)
	if err != nil {
		t.Fatal(err)
	}
	v, err := guestconsole.Dial(vnc)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "vm-1" {
		t.Errorf("desktop name %q, want vm-1", v.Name)
	}
	if px, err := v.Frame(5, 5); err != nil || px != kubetest.ConsoleColour {
		t.Errorf("pixel %v, %v; want %v", px, err, kubetest.ConsoleColour)
	}
	vnc.Close()

	serial, err := cluster.OpenConsole(ctx, ns, "vm-1", provision.ConsoleSerial)
	if err != nil {
		t.Fatal(err)
	}
	defer serial.Close()
	r := bufio.NewReader(serial)
	expect(t, r, "vm-1 login: ")
	if _, err := serial.Write([]byte("dev\r")); err != nil {
		t.Fatal(err)
	}
	expect(t, r, "dev\r\nPassword: ")

	if _, err := cluster.OpenConsole(ctx, ns, "vm-absent", provision.ConsoleVNC); !errors.Is(err, provision.ErrNotRunning) {
		t.Errorf("console of a VM without an instance: %v, want ErrNotRunning", err)
	}

	// The screenshot subresource: a PNG of the screen the RFB server shows,
	// from the stand-in, through the aggregator.
	png, err := cluster.Screenshot(ctx, ns, "vm-1")
	if err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, png, 320, 200, kubetest.ConsoleColour)
	if standIn.Screenshots() != 1 {
		t.Errorf("the stand-in served %d screenshots, want 1", standIn.Screenshots())
	}
	if _, err := cluster.Screenshot(ctx, ns, "vm-absent"); !errors.Is(err, provision.ErrNotRunning) {
		t.Errorf("screenshot of a VM without an instance: %v, want ErrNotRunning", err)
	}

	// The stand-in dies mid-session: the console ends, it does not hang.
	standIn.Kill()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, r); done <- err }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the serial console still reads 15s after virt-api's stand-in died")
	}
	// With virt-api gone, the aggregator answers 503: the cluster cannot
	// take a screenshot, which is not the same as a VM that does not run.
	if _, err := cluster.Screenshot(ctx, ns, "vm-1"); !errors.Is(err, provision.ErrConsoleUnavailable) {
		t.Errorf("screenshot with virt-api's stand-in dead: %v, want ErrConsoleUnavailable", err)
	}
}

func expect(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	if _, err := guestconsole.ReadUntil(r, want); err != nil {
		t.Fatal(err)
	}
}
