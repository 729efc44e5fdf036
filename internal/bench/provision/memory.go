package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// settle is how long the portal runs after it is ready before the resident
// set is read again: the watcher has then reconciled what it found.
const settle = 15 * time.Second

// memory runs `portal serve` against the API server with no Paddock VMs,
// then with n VMs and n VMIs, and reads its resident set.
func memory(ctx context.Context, env *kubetest.Env, bin, kcPath, dbURL string, o options, rep *report, log *slog.Logger) error {
	dir := filepath.Dir(bin)
	pool, err := freshDB(ctx, dbURL)
	if err != nil {
		return err
	}
	pool.Close()

	// What the portal watches is counted in the cluster, not taken from
	// what this item creates: the items before it leave VMs behind (the
	// front door's), or may (the pages' when deleting them failed).
	left, err := clearVMs(ctx, env)
	if err != nil {
		return err
	}
	log.Info("portal serve with no VMs", "deleted first", left, "load", loadavg())
	row, err := measureRSS(ctx, bin, dbURL, kcPath, filepath.Join(dir, "portal-0.log"), 0)
	if err != nil {
		return err
	}
	rep.memory = append(rep.memory, row)
	log.Info("measured", "row", row)

	log.Info("creating VMs and VMIs", "each", o.memoryVMs, "load", loadavg())
	start := time.Now()
	if err := createVMsAndVMIs(ctx, env, o.memoryVMs); err != nil {
		return err
	}
	log.Info("created", "took", time.Since(start).Round(time.Second))
	if vms, vmis, _, err := inCluster(ctx, env); err != nil || vms != o.memoryVMs || vmis != o.memoryVMs {
		return fmt.Errorf("the cluster holds %d VMs and %d VMIs where the memory item created %d of each (%v)", vms, vmis, o.memoryVMs, err)
	}

	log.Info("portal serve watching them", "load", loadavg())
	row, err = measureRSS(ctx, bin, dbURL, kcPath, filepath.Join(dir, "portal-n.log"), o.memoryVMs)
	if err != nil {
		return err
	}
	rep.memory = append(rep.memory, row)
	log.Info("measured", "row", row)
	rep.notes = append(rep.notes, fmt.Sprintf("Memory: `portal serve` (built with `go build -trimpath`, CGO off) runs as the RBAC-bound provisioner with its default settings, watching every namespace; VmRSS is read from /proc when /readyz first answers 200 (informers synced) and again %s later, VmHWM is the peak.", settle),
		fmt.Sprintf("Memory: before the baseline the program deleted the %s that the items before it had left in the cluster, and counted none left; before the second row it counted %d VMs and %d VMIs in the whole cluster.", left, o.memoryVMs, o.memoryVMs))
	return nil
}

// buildPortal builds cmd/portal as `make build` does, into dir, and writes a
// kubeconfig for the RBAC-bound provisioner beside it.
func buildPortal(ctx context.Context, env *kubetest.Env, dir, prebuilt string) (bin, kubeconfig string, err error) {
	bin = filepath.Join(dir, "portal")
	if prebuilt != "" {
		bin = prebuilt
	}
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/portal")
	if prebuilt != "" {
		build = exec.CommandContext(ctx, "true")
	}
	build.Dir = env.RepoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	// Other people may be mid-edit in a shared tree: retry a failed build.
	for attempt := 1; ; attempt++ {
		out, err := build.CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 10 || ctx.Err() != nil {
			return "", "", fmt.Errorf("go build: %w\n%s", err, out)
		}
		time.Sleep(20 * time.Second)
		build = exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/portal")
		build.Dir = env.RepoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	kc, err := env.Kubeconfig(provisionerUser)
	if err != nil {
		return "", "", err
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	return bin, kubeconfig, os.WriteFile(kubeconfig, kc, 0o600)
}

// measureRSS starts portal serve, waits until /readyz answers 200, reads
// VmRSS, waits for the watcher to settle, reads VmRSS and VmHWM, and stops it.
func measureRSS(ctx context.Context, bin, dbURL, kubeconfig, logPath string, n int) (string, error) {
	addr, err := freePort()
	if err != nil {
		return "", err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "PADDOCK_CLUSTER=kubernetes", "KUBECONFIG="+kubeconfig,
		"PADDOCK_ADDR="+addr, "PADDOCK_LOG_FORMAT=text", "PADDOCK_DEV_SIGNIN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("portal never became ready; see its log:\n%s", tail(logPath))
		}
		if cmd.ProcessState != nil {
			return "", fmt.Errorf("portal exited:\n%s", tail(logPath))
		}
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	ready := time.Since(start)
	pid := cmd.Process.Pid
	atReady, err := procStatus(pid, "VmRSS")
	if err != nil {
		return "", err
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	settled, err := procStatus(pid, "VmRSS")
	if err != nil {
		return "", err
	}
	hwm, err := procStatus(pid, "VmHWM")
	if err != nil {
		return "", err
	}
	label := "baseline: no Paddock VMs"
	if n > 0 {
		label = "watching every VM and VMI"
	}
	return fmt.Sprintf("| %s | %d | %d | %.1f s | %s | %s | %s |", label, n, n, ready.Seconds(), mib(atReady), mib(settled), mib(hwm)), nil
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// procStatus reads a kB field of /proc/PID/status.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// freePort returns a loopback address for a portal to listen on
// (kubetest.FreePort).
func freePort() (string, error) {
	port, err := kubetest.FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// inCluster counts the VMs and VMIs in every namespace of the cluster and
// names the namespaces that hold any.
func inCluster(ctx context.Context, env *kubetest.Env) (vms, vmis int, namespaces []string, err error) {
	admin, err := provision.NewKubernetesCluster(env.Config)
	if err != nil {
		return 0, 0, nil, err
	}
	seen := map[string]bool{}
	note := func(ns string) {
		if !seen[ns] {
			seen[ns] = true
			namespaces = append(namespaces, ns)
		}
	}
	for next := ""; ; {
		l, err := admin.Virt.KubevirtV1().VirtualMachines(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: 1000, Continue: next})
		if err != nil {
			return 0, 0, nil, fmt.Errorf("count the VMs in the cluster: %w", err)
		}
		for _, vm := range l.Items {
			note(vm.Namespace)
		}
		vms += len(l.Items)
		if next = l.Continue; next == "" {
			break
		}
	}
	for next := ""; ; {
		l, err := admin.Virt.KubevirtV1().VirtualMachineInstances(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: 1000, Continue: next})
		if err != nil {
			return 0, 0, nil, fmt.Errorf("count the VMIs in the cluster: %w", err)
		}
		for _, vmi := range l.Items {
			note(vmi.Namespace)
		}
		vmis += len(l.Items)
		if next = l.Continue; next == "" {
			break
		}
	}
	return vms, vmis, namespaces, nil
}

// clearVMs deletes every VM and VMI in the cluster, checks that none is
// left, and says what it deleted.
func clearVMs(ctx context.Context, env *kubetest.Env) (string, error) {
	vms, vmis, namespaces, err := inCluster(ctx, env)
	if err != nil {
		return "", err
	}
	for _, ns := range namespaces {
		if err := deleteVMsAndVMIs(ctx, env, ns); err != nil {
			return "", err
		}
	}
	if v, i, _, err := inCluster(ctx, env); err != nil || v != 0 || i != 0 {
		return "", fmt.Errorf("%d VMs and %d VMIs are left after deleting every one (%v)", v, i, err)
	}
	return fmt.Sprintf("%d VMs and %d VMIs", vms, vmis), nil
}

// createVMsAndVMIs creates, as the administrator playing virt-controller,
// n VirtualMachines rendered as Paddock renders them and n running
// VirtualMachineInstances with status, labelled as Paddock's.
func createVMsAndVMIs(ctx context.Context, env *kubetest.Env, n int) error {
	ns, err := env.CreateNamespace(ctx, "bench-mem")
	if err != nil {
		return err
	}
	_, err = createPairs(ctx, env, n, func(i int) pair {
		id := 20_000_000 + int64(i)
		return pair{ns: ns, id: id, name: fmt.Sprintf("vm-%d", id), ip: fmt.Sprintf("10.%d.%d.%d", (id>>16)&255, (id>>8)&255, id&255)}
	})
	return err
}

// pair names one VM and its instance: the request it belongs to, where it
// is, and the instance's address.
type pair struct {
	ns, name, ip string
	id           int64
	// status also sets the VM's status as virt-controller does for a
	// running VM (Running, ready), which the watcher reads.
	status bool
}

// createPairs creates n VMs and their running instances (createPair), 32
// at a time, and returns the UID of each VM by index.
func createPairs(ctx context.Context, env *kubetest.Env, n int, of func(i int) pair) ([]string, error) {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	admin, err := provision.NewKubernetesCluster(cfg)
	if err != nil {
		return nil, err
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		return nil, err
	}
	var spec store.TemplateSpec
	for _, s := range specs {
		if s.Name == benchTmpl {
			spec = s
		}
	}
	uids := make([]string, n)
	var next atomic.Int64
	next.Store(-1)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var first error
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				uid, err := createPair(ctx, admin, spec, of(int(i)))
				if err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				uids[i] = uid
			}
		})
	}
	wg.Wait()
	return uids, errors.Join(first, ctx.Err())
}

func createPair(ctx context.Context, c *provision.Cluster, spec store.TemplateSpec, p pair) (string, error) {
	ns, id, name := p.ns, p.id, p.name
	vm, err := provision.Render(spec, store.Request{ID: id, TeamName: "payments", Namespace: ns, RequesterLogin: "developer",
		TemplateName: benchTmpl, TemplateVersion: 1, Size: benchSize, Name: name, SSHPublicKey: sshKey})
	if err != nil {
		return "", err
	}
	created, err := c.Virt.KubevirtV1().VirtualMachines(ns).Create(ctx, vm, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create VM %s: %w", name, err)
	}
	if p.status {
		created.Status = virtv1.VirtualMachineStatus{Created: true, Ready: true, PrintableStatus: virtv1.VirtualMachineStatusRunning,
			Conditions: []virtv1.VirtualMachineCondition{{Type: virtv1.VirtualMachineReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}}
		if created, err = c.Virt.KubevirtV1().VirtualMachines(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return "", fmt.Errorf("set the status of VM %s: %w", name, err)
		}
	}
	vmiSpec := *created.Spec.Template.Spec.DeepCopy()
	// A VMI carries what virt-controller expands from the instancetype.
	if vmiSpec.Domain.Resources.Requests == nil {
		vmiSpec.Domain.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}
	}
	isController := true
	ip := p.ip
	vmi := &virtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: created.Name, Namespace: ns, Labels: created.Spec.Template.ObjectMeta.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachine", Name: created.Name,
				UID: created.UID, Controller: &isController}}},
		Spec: vmiSpec,
		Status: virtv1.VirtualMachineInstanceStatus{
			Phase:    virtv1.Running,
			NodeName: "node-1",
			Interfaces: []virtv1.VirtualMachineInstanceNetworkInterface{{
				Name: "default", IP: ip, IPs: []string{ip},
			}},
			Conditions: []virtv1.VirtualMachineInstanceCondition{{
				Type: virtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(),
			}},
		},
	}
	if vmi.Labels == nil {
		vmi.Labels = map[string]string{}
	}
	for k, v := range created.Labels {
		vmi.Labels[k] = v
	}
	if _, err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).Create(ctx, vmi, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create VMI %s: %w", name, err)
	}
	return string(created.UID), nil
}
