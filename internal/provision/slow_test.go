package provision_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// hanger sits between the client and the real API server and, while
// hanging, never answers a request about one VM name (in its path or, for a
// create, in its body) until the caller gives up: an API server that hangs
// for some objects and not others.
type hanger struct {
	name    string
	mu      sync.Mutex
	release chan struct{}
}

// hangRT is one client's transport through the hanger.
type hangRT struct {
	h    *hanger
	next http.RoundTripper
}

func (t hangRT) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.h
	h.mu.Lock()
	release := h.release
	h.mu.Unlock()
	if release != nil && h.about(req) {
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-release:
		}
	}
	return t.next.RoundTrip(req)
}

func (h *hanger) about(req *http.Request) bool {
	if strings.Contains(req.URL.Path, "/virtualmachines/"+h.name) {
		return true
	}
	if req.Body == nil || req.GetBody == nil {
		return false
	}
	body, err := req.GetBody()
	if err != nil {
		return false
	}
	b, _ := io.ReadAll(body)
	return bytes.Contains(b, []byte(`"name":"`+h.name+`"`))
}

// stop makes the API server answer again.
func (h *hanger) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.release != nil {
		close(h.release)
		h.release = nil
	}
}

func hangingConfig(t *testing.T, name string) (*rest.Config, *hanger) {
	t.Helper()
	env := startedCluster(t)
	cfg, err := env.ConfigFor(provisionerUser)
	if err != nil {
		t.Fatal(err)
	}
	h := &hanger{name: name, release: make(chan struct{})}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return hangRT{h: h, next: rt} })
	t.Cleanup(h.stop)
	return cfg, h
}

// TestKubeHungCallTimesOut: while the API server never answers about one
// VM, creating it gives up after Cluster.Timeout with a transient error,
// and creates of other VMs made at the same time complete meanwhile.
func TestKubeHungCallTimesOut(t *testing.T) {
	cfg, h := hangingConfig(t, "hung")
	env := realCluster(t)
	ctx := context.Background()
	ns, err := env.CreateNamespace(ctx, "hang")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cluster.Timeout = 2 * time.Second
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	var cirros store.TemplateSpec
	for _, s := range specs {
		if s.Name == "cirros" {
			cirros = s
		}
	}
	render := func(id int64, name string) *virtv1.VirtualMachine {
		vm, err := provision.Render(cirros, store.Request{ID: id, TeamName: "t", Namespace: ns, RequesterLogin: "d",
			TemplateName: cirros.Name, TemplateVersion: 1, Size: cirros.Sizes[0].Name, Name: name, SSHPublicKey: sshKey})
		if err != nil {
			t.Fatal(err)
		}
		return vm
	}

	start := time.Now()
	hungDone := make(chan error, 1)
	go func() {
		_, err := cluster.CreateVM(ctx, render(1, "hung"))
		hungDone <- err
	}()
	var wg sync.WaitGroup
	others := make([]error, 5)
	for i := range others {
		wg.Go(func() {
			_, others[i] = cluster.CreateVM(ctx, render(int64(10+i), fmt.Sprintf("quick-%d", i)))
		})
	}
	wg.Wait()
	othersTook := time.Since(start)
	for i, err := range others {
		if err != nil {
			t.Errorf("quick-%d beside the hung call: %v", i, err)
		}
	}
	select {
	case err := <-hungDone:
		t.Fatalf("the hung create returned before the others finished (%s): %v", othersTook, err)
	default:
	}
	err = <-hungDone
	hungTook := time.Since(start)
	t.Logf("others finished in %s; the hung create gave up after %s: %v", othersTook.Round(time.Millisecond), hungTook.Round(time.Millisecond), err)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !provision.Transient(err) {
		t.Errorf("hung create: %v; want a transient deadline error", err)
	}
	if !strings.Contains(err.Error(), "hung") {
		t.Errorf("the error does not name the VM: %v", err)
	}
	if hungTook < cluster.Timeout || hungTook > cluster.Timeout+3*time.Second {
		t.Errorf("hung create gave up after %s with Timeout %s", hungTook, cluster.Timeout)
	}
	h.stop()
	if _, err := cluster.Virt.KubevirtV1().VirtualMachines(ns).Get(ctx, "quick-0", metav1.GetOptions{}); err != nil {
		t.Errorf("quick-0 was not created: %v", err)
	}
}

// TestKubeHungRequestDoesNotBlockOthers runs the provisioner and watcher
// while the API server hangs on one VM: the other requests reach running,
// the hung one waits with the reason shown, and it completes (with one VM)
// once the API server answers again.
func TestKubeHungRequestDoesNotBlockOthers(t *testing.T) {
	cfg, hang := hangingConfig(t, "stalled")
	h, ns := newKubeHarness(t, cfg)
	stalled := h.submit("cirros", "nano", "stalled")
	var quick []int64
	for i := range 3 {
		quick = append(quick, h.submit("cirros", "nano", fmt.Sprintf("brisk-%d", i)).ID)
	}
	for _, id := range quick {
		h.wait(id, store.StateRunning, hasIP)
	}
	r := h.wait(stalled.ID, store.StateApproved, func(r store.Request) bool { return strings.Contains(r.StateReason, "Waiting for the cluster") })
	t.Logf("the stalled request meanwhile: %s", r.StateReason)
	hang.stop()
	h.wait(stalled.ID, store.StateRunning, hasIP)
	list, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 4 {
		t.Errorf("%d VMs for 4 requests (%v)", len(list.Items), err)
	}
}
