package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

//go:embed controller/crds/*.yaml controller/rbac.yaml
var controllerFS embed.FS

// KubeVirtNamespace is where virt-controller runs, holds its leader-election
// Lease and reads the KubeVirt CR, as virt-operator installs it.
const KubeVirtNamespace = "kubevirt"

// VirtControllerUser is the identity virt-controller authenticates as: its
// ServiceAccount's user name, bound by virt-operator's RBAC for it.
const VirtControllerUser = "system:serviceaccount:" + KubeVirtNamespace + ":kubevirt-controller"

// kcmControllers are the kube-controller-manager controllers KubeVirt relies
// on: garbage collection (owner references, foreground deletion of a VM's
// instance and a pool's members), namespace deletion, the "default"
// ServiceAccount every namespace needs before the API server admits a pod
// (virt-launcher pods included), and the PVC protection controller, which
// lets a deleted PVC (a DataVolume's) go once no pod uses it: the API
// server's StorageObjectInUseProtection admission puts its finalizer on
// every PVC.
const kcmControllers = "garbage-collector-controller,namespace-controller,serviceaccount-controller,persistentvolumeclaim-protection-controller"

// Controllers makes Start also run kube-controller-manager (garbage
// collection, namespaces, service accounts, PVC protection) and KubeVirt
// v1.8.0's own virt-controller, with the rest of KubeVirt's CRDs, CDI's
// configuration CRDs, a KubeVirt CR (software emulation on), virt-operator's
// RBAC for virt-controller, and the node-level stand-ins (StandInNode,
// StandInVirtHandler) for one node named StandInNodeName, which fits pods
// within StandInNodeAllocatable and cannot pull images from
// UnresolvableRegistry nor images named "broken" (standInPull), nor those
// a test says are not pushed yet (ImageNotPushed).
// virt-controller is restarted whenever it exits (it exits on purpose, e.g.
// when the DataVolume API appears or goes). CDI's import is not run: a test
// that needs one to finish or fail plays it with StandInCDIImporter.
func Controllers() Option { return func(o *options) { o.controllers = true } }

// controllerProc is a supervised child process: restarted when it exits,
// until stop.
type controllerProc struct {
	name    string
	logPath string
	cmd     func() *exec.Cmd
	verbose bool

	mu       sync.Mutex
	cur      *exec.Cmd
	starts   int
	stopping bool
	done     chan struct{}
}

// run starts the process and keeps restarting it when it exits, one second
// apart, until stop is called.
func (p *controllerProc) run() error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	var out io.Writer = logFile
	if p.verbose {
		out = io.MultiWriter(logFile, os.Stderr)
	}
	start := func() (*exec.Cmd, error) {
		cmd := p.cmd()
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = childProcAttr()
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("kubetest: start %s: %w", p.name, err)
		}
		p.mu.Lock()
		p.cur = cmd
		p.starts++
		p.mu.Unlock()
		return cmd, nil
	}
	cmd, err := start()
	if err != nil {
		logFile.Close()
		return err
	}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		defer logFile.Close()
		for {
			err := cmd.Wait()
			p.mu.Lock()
			stopping := p.stopping
			p.mu.Unlock()
			if stopping {
				return
			}
			fmt.Fprintf(out, "kubetest: %s exited (%v); restarting\n", p.name, err)
			time.Sleep(time.Second)
			p.mu.Lock()
			stopping = p.stopping
			p.mu.Unlock()
			if stopping {
				return
			}
			if cmd, err = start(); err != nil {
				fmt.Fprintln(out, err)
				return
			}
		}
	}()
	return nil
}

// Starts reports how many times the process has been started.
func (p *controllerProc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// signal sends sig to the running process.
func (p *controllerProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.Process == nil {
		return errors.New("kubetest: " + p.name + " is not running")
	}
	return p.cur.Process.Signal(sig)
}

func (p *controllerProc) stop() {
	if p == nil || p.done == nil {
		return
	}
	p.mu.Lock()
	p.stopping = true
	cur := p.cur
	p.mu.Unlock()
	if cur != nil && cur.Process != nil {
		_ = cur.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.mu.Lock()
		if p.cur != nil && p.cur.Process != nil {
			_ = p.cur.Process.Kill()
		}
		p.mu.Unlock()
		<-p.done
	}
}

func (p *controllerProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// controllerCRDs decodes the CRDs virt-controller needs beyond the base set.
func controllerCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return decodeCRDs(controllerFS, "controller/crds")
}

// startControllers runs kube-controller-manager, then gives virt-controller
// what it needs and runs it, then the node-level stand-ins; it returns when
// kube-controller-manager is healthy and virt-controller holds its lease.
func (e *Env) startControllers(ctx context.Context, verbose bool) error {
	if err := e.startKubeControllerManager(ctx, verbose); err != nil {
		return err
	}
	if err := e.prepareVirtController(ctx); err != nil {
		return err
	}
	if err := e.startVirtController(ctx, verbose); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	// The node pulls any image but those of UnresolvableRegistry, those
	// named "broken" (standInPull) and those a test says are not pushed
	// (ImageNotPushed).
	e.standInNode = &StandInNode{Client: cs, NodeName: StandInNodeName, CannotPull: e.registries.pull}
	if err := e.standInNode.Start(ctx); err != nil {
		return err
	}
	e.standInHandler = &StandInVirtHandler{Config: e.Config, NodeName: StandInNodeName}
	return e.standInHandler.Start(ctx)
}

func (e *Env) startKubeControllerManager(ctx context.Context, verbose bool) error {
	dir := filepath.Join(e.tmpDir, "kube-controller-manager")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	// kube-controller-manager's own identity, with an administrator's
	// rights: it runs its controllers without per-controller service
	// account credentials.
	kubeconfig, err := e.Kubeconfig("system:kube-controller-manager", "system:masters")
	if err != nil {
		return err
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return err
	}
	port, err := e.freePort()
	if err != nil {
		return err
	}
	e.kcm = &controllerProc{
		name:    "kube-controller-manager",
		logPath: filepath.Join(e.tmpDir, "kube-controller-manager.log"),
		verbose: verbose,
		cmd: func() *exec.Cmd {
			return exec.Command(filepath.Join(e.BinDir, "kube-controller-manager"),
				"--kubeconfig", kcPath,
				"--authentication-kubeconfig", kcPath,
				"--authorization-kubeconfig", kcPath,
				"--bind-address", "127.0.0.1",
				"--secure-port", strconv.Itoa(port),
				"--cert-dir", dir,
				"--controllers", kcmControllers,
				"--leader-elect=false",
				"--use-service-account-credentials=false",
			)
		},
	}
	if err := e.kcm.run(); err != nil {
		return err
	}
	client := &http.Client{
		Timeout: 2 * time.Second,
		// Its serving certificate is self-signed; only the answer matters.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback health probe
	}
	defer client.CloseIdleConnections()
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: kube-controller-manager not healthy after 2m: %s", e.kcm.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prepareVirtController installs the CRDs virt-controller watches, its RBAC
// and the KubeVirt CR it reads its configuration from.
func (e *Env) prepareVirtController(ctx context.Context) error {
	crds, err := controllerCRDs()
	if err != nil {
		return err
	}
	ext, err := apiextensionsclient.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kubetest: create CRD %s: %w", crd.Name, err)
		}
	}
	if err := waitEstablished(ctx, e.Config, crds); err != nil {
		return err
	}
	rbac, err := controllerFS.ReadFile("controller/rbac.yaml")
	if err != nil {
		return err
	}
	if err := e.ApplyRBAC(ctx, rbac, VirtControllerUser); err != nil {
		return err
	}
	return e.createKubeVirtCR(ctx)
}

var kubevirtsGVR = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "kubevirts"}

// createKubeVirtCR creates the KubeVirt CR virt-operator would have been
// given, with software emulation on (no /dev/kvm on a test machine), and
// marks it deployed as virt-operator does: virt-controller ignores a CR
// without a phase.
func (e *Env) createKubeVirtCR(ctx context.Context) error {
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	kv := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "KubeVirt",
		"metadata":   map[string]any{"name": "kubevirt", "namespace": KubeVirtNamespace},
		"spec": map[string]any{
			"configuration": map[string]any{
				"developerConfiguration": map[string]any{"useEmulation": true},
			},
		},
	}}
	created, err := dyn.Resource(kubevirtsGVR).Namespace(KubeVirtNamespace).Create(ctx, kv, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubetest: create KubeVirt CR: %w", err)
	}
	created.Object["status"] = map[string]any{
		"phase":                   "Deployed",
		"defaultArchitecture":     "amd64",
		"observedKubeVirtVersion": "v1.8.0",
		"targetKubeVirtVersion":   "v1.8.0",
	}
	if _, err := dyn.Resource(kubevirtsGVR).Namespace(KubeVirtNamespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kubetest: mark KubeVirt CR deployed: %w", err)
	}
	return nil
}

func (e *Env) startVirtController(ctx context.Context, verbose bool) error {
	dir := filepath.Join(e.tmpDir, "virt-controller")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	kubeconfig, err := e.Kubeconfig(VirtControllerUser, "system:serviceaccounts", "system:serviceaccounts:"+KubeVirtNamespace)
	if err != nil {
		return err
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return err
	}
	// Its metrics endpoint (also /healthz and /leader) serves TLS with a
	// certificate from files.
	ca, err := servingCert(dir)
	if err != nil {
		return err
	}
	e.virtControllerCA = ca
	port, err := e.freePort()
	if err != nil {
		return err
	}
	e.virtControllerURL = "https://127.0.0.1:" + strconv.Itoa(port)
	e.virtController = &controllerProc{
		name:    "virt-controller",
		logPath: filepath.Join(e.tmpDir, "virt-controller.log"),
		verbose: verbose,
		cmd: func() *exec.Cmd {
			return exec.Command(filepath.Join(e.BinDir, "virt-controller"),
				"--kubeconfig", kcPath,
				"--listen", "127.0.0.1",
				"--port", strconv.Itoa(port),
				"--prom-cert-file", filepath.Join(dir, "tls.crt"),
				"--prom-key-file", filepath.Join(dir, "tls.key"),
			)
		},
	}
	if err := e.virtController.run(); err != nil {
		return err
	}
	return e.waitVirtControllerLeading(ctx, 3*time.Minute)
}

// waitVirtControllerLeading waits until the running virt-controller leads
// with its controllers started and their caches synced: its /leader
// endpoint says so once it does (the Lease alone would not tell a restarted
// process from the one before, both having the host's name).
func (e *Env) waitVirtControllerLeading(ctx context.Context, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.virtControllerCA)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		var answer struct {
			APIServer struct {
				Leader string `json:"leader"`
			} `json:"apiserver"`
		}
		resp, err := client.Get(e.virtControllerURL + "/leader")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if err == nil && answer.APIServer.Leader == "true" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: virt-controller not leading after %s (%v, leader %q): %s", timeout, err, answer.APIServer.Leader, e.virtController.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// VirtControllerStarts reports how many times virt-controller has been
// started (1 until it first exits). Zero without Controllers.
func (e *Env) VirtControllerStarts() int {
	if e.virtController == nil {
		return 0
	}
	return e.virtController.Starts()
}

// VirtControllerLog returns the end of virt-controller's output.
func (e *Env) VirtControllerLog() string {
	if e.virtController == nil {
		return ""
	}
	return e.virtController.logTail()
}

// stopControllers stops the stand-ins and the controllers, in reverse order.
func (e *Env) stopControllers() {
	if e.standInHandler != nil {
		e.standInHandler.Stop()
	}
	if e.standInNode != nil {
		e.standInNode.Stop()
	}
	e.virtController.stop()
	e.kcm.stop()
}
