package provision_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// vmCensus watches the VirtualMachines of one request and notes every moment
// at which more than one of them exists.
type vmCensus struct {
	mu       sync.Mutex
	live     map[string]bool
	problems []string
	seq      []string
	w        watch.Interface
	done     chan struct{}
}

func countVMs(t *testing.T, h *harness, ns string, id int64) *vmCensus {
	t.Helper()
	rid := strconv.FormatInt(id, 10)
	vms := h.cluster.Virt.KubevirtV1().VirtualMachines(ns)
	sel := metav1.ListOptions{LabelSelector: provision.LabelRequest + "=" + rid}
	list, err := vms.List(h.ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	c := &vmCensus{live: map[string]bool{}, done: make(chan struct{})}
	for _, vm := range list.Items {
		c.live[string(vm.UID)] = true
	}
	sel.ResourceVersion = list.ResourceVersion
	c.w, err = vms.Watch(h.ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		for ev := range c.w.ResultChan() {
			vm, ok := ev.Object.(*virtv1.VirtualMachine)
			if !ok || vm.Labels[provision.LabelRequest] != rid {
				continue
			}
			uid := string(vm.UID)
			c.mu.Lock()
			switch ev.Type {
			case watch.Added, watch.Modified:
				if !c.live[uid] {
					c.seq = append(c.seq, "created "+uid)
				}
				c.live[uid] = true
			case watch.Deleted:
				delete(c.live, uid)
				c.seq = append(c.seq, "deleted "+uid)
			}
			if len(c.live) > 1 {
				c.problems = append(c.problems, fmt.Sprintf("%d VMs at once after %v", len(c.live), c.seq))
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// stop ends the census and returns what it saw.
func (c *vmCensus) stop() (problems, seq []string) {
	c.w.Stop()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.problems, c.seq
}

// publishV2 publishes a second version of template cirros.
func publishV2(t *testing.T, h *harness) {
	t.Helper()
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(specs, func(s store.TemplateSpec) bool { return s.Name == "cirros" })
	spec := specs[i]
	spec.CloudInit = "#cloud-config\nruncmd: [echo rebuilt]\n"
	v, changed, err := h.st.PublishTemplate(h.ctx, spec, nil)
	if err != nil || !changed || v != 2 {
		t.Fatalf("publish v2: %v %v %d", err, changed, v)
	}
}

// rebuildJourney runs a VM from cirros v1, rebuilds it from v2 and checks
// that the old VM went before the new one came, the new one carries v2's
// label, and the request's events tell the story.
func rebuildJourney(t *testing.T, h *harness, ns string) {
	r := h.submit("cirros", "nano", "cattle-1")
	r = h.wait(r.ID, store.StateRunning, hasIP)
	oldUID := r.VM.UID
	publishV2(t, h)
	census := countVMs(t, h, ns, r.ID)
	if _, err := h.st.RequestRebuild(h.ctx, r.ID, 0, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID, store.StateRunning, func(r store.Request) bool { return hasIP(r) && r.VM.UID != oldUID })
	problems, seq := census.stop()
	if len(problems) > 0 {
		t.Errorf("more than one VM for the request: %v", problems)
	}
	if want := []string{"deleted " + oldUID, "created " + r.VM.UID}; !slices.Equal(seq, want) {
		t.Errorf("VM history %v, want %v", seq, want)
	}
	vm, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).Get(h.ctx, "cattle-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vm.Labels[provision.LabelTemplateVersion] != "2" || string(vm.UID) != r.VM.UID || r.TemplateVersion != 2 {
		t.Errorf("new VM: labels %v uid %s (request v%d, uid %s)", vm.Labels, vm.UID, r.TemplateVersion, r.VM.UID)
	}
	if !strings.Contains(r.VM.Manifest, "rebuilt") || !strings.Contains(r.VM.Manifest, provision.LabelTemplateVersion+`: "2"`) {
		t.Errorf("manifest row not replaced:\n%s", r.VM.Manifest)
	}
	list, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{
		LabelSelector: provision.LabelRequest + "=" + strconv.FormatInt(r.ID, 10)})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("%d VMs for the request (%v)", len(list.Items), err)
	}
	var kinds []string
	for _, e := range h.events(r.ID) {
		kinds = append(kinds, e.Kind)
	}
	got := strings.Join(kinds, ",")
	if !strings.Contains(got, "rebuild,rebuild_deleted,vm_created") {
		t.Errorf("events: %s", got)
	}
}

func TestSimulatedRebuildKeepsOneVMPerRequest(t *testing.T) {
	h := newSimHarness(t)
	rebuildJourney(t, h, "payments")
}

func TestKubeRebuildKeepsOneVMPerRequest(t *testing.T) {
	h, ns := newKubeHarness(t, nil)
	rebuildJourney(t, h, ns)
}

// TestKubeRebuildKeepsOneVMPerRequestOnRealVirtControllerWithNodeStandIns
// is the same on the cluster that runs KubeVirt's own virt-controller and
// garbage collector (kubelet and virt-handler stood in for, no Simulator).
func TestKubeRebuildKeepsOneVMPerRequestOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	h, ns, _ := newControllersHarness(t, "rebuild")
	rebuildJourney(t, h, ns)
}

// A rebuild of a VM deleted meanwhile does nothing: the delete wins.
func TestSimulatedRebuildThenDelete(t *testing.T) {
	h := newSimHarness(t)
	r := h.submit("cirros", "nano", "short-lived")
	h.wait(r.ID, store.StateRunning, hasIP)
	if _, err := h.st.RequestRebuild(h.ctx, r.ID, 0, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	if err := h.st.RequestAction(h.ctx, r.ID, store.ActionDelete, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateDeleted, nil)
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	list, err := h.cluster.Virt.KubevirtV1().VirtualMachines("payments").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("%d VMs after delete (%v)", len(list.Items), err)
	}
}
