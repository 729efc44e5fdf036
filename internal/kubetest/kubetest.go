// Package kubetest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver v1.34 (through controller-runtime's envtest), KubeVirt's and
// CDI's CRDs as KubeVirt v1.8.0 generates them, KubeVirt's own virt-api
// admission webhooks for VirtualMachines (served by a local kubevirt-webhooks
// process, registered with the webhook configurations virt-operator
// generates), and the common-instancetypes bundle virt-operator deploys
// (u1.nano ... u1.8xlarge and the other series, ubuntu, fedora, rhel.9, ...).
//
// Authentication is real: every user is a client-certificate identity the API
// server verifies, and authorization is RBAC. Env.Config is an admin
// (system:masters); Env.ConfigFor gives any other user, and
// Env.ApplyPaddockRBAC binds a user to exactly the rules of deploy/rbac.yaml.
// The API server keeps an audit log of every request but the admins';
// Env.AuditedCalls reads what a user asked for, to hold against what its
// roles grant (GrantedCalls, CompareGrants).
//
// WithoutCDI and WithoutPools leave CDI's DataVolume and DataSource CRDs, or
// the VirtualMachinePool CRD, out, as on clusters that lack them;
// Env.InstallCRDs installs them later.
//
// By default no kubelet, scheduler or controllers run: nothing turns a
// VirtualMachine into a VirtualMachineInstance, and no namespace is ever
// finalized away; tests play virt-controller themselves where they need it.
// With the Controllers option, kube-controller-manager (garbage collection,
// namespaces, service accounts) and KubeVirt's own virt-controller run too,
// and only the node-level parts are stood in for (StandInNode for kubelet,
// StandInVirtHandler for virt-handler).
//
// Start once per test package, from TestMain:
//
//	var env *kubetest.Env
//
//	func TestMain(m *testing.M) {
//		var err error
//		env, err = kubetest.Start(context.Background())
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		env.Stop()
//		os.Exit(code)
//	}
//
// The binaries come from hack/kube-tools.sh's cache directory; Start fails
// with a message naming that script when they are missing.
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

//go:embed crds/*.yaml
var crdFS embed.FS

//go:embed webhooks/*.yaml
var webhookFS embed.FS

//go:embed instancetypes/*.yaml
var instancetypeFS embed.FS

const (
	tmpDirPrefix = "kubetest-"
	ownerFile    = "owner.pid"
)

// Env is a running API server with KubeVirt installed.
type Env struct {
	// Config authenticates as an administrator (group system:masters).
	Config *rest.Config
	// BinDir holds the binaries that run (hack/kube-tools.sh's cache directory).
	BinDir string
	// RepoRoot is the root of the paddock repository.
	RepoRoot string
	// WebhookURL is the base URL of the kubevirt-webhooks server.
	WebhookURL string

	env      *envtest.Environment
	tmpDir   string
	hookCA   []byte
	hookCmd  *exec.Cmd
	hookDone chan struct{}
	hookLog  string

	// Set with the Controllers option.
	kcm            *controllerProc
	virtController *controllerProc
	// virtControllerURL is where virt-controller serves /metrics, /healthz
	// and /leader, with a certificate from virtControllerCA.
	virtControllerURL string
	virtControllerCA  []byte
	standInNode       *StandInNode
	registries        standInRegistries
	standInHandler    *StandInVirtHandler

	// leftOut are the CRDs Start did not install (WithoutCDI,
	// WithoutPools), for InstallCRDs.
	leftOut []*apiextensionsv1.CustomResourceDefinition

	stopOnce sync.Once
	stopErr  error
	// usersMu serialises envtest's AddUser, which is not safe for
	// concurrent use (its CA counts certificate serial numbers unguarded),
	// for parallel tests that each make a user.
	usersMu sync.Mutex

	// ports are those freePort handed out, so that no two of this Env's
	// processes are given the same one.
	portsMu sync.Mutex
	ports   map[int]bool
}

// freePort is FreePort, never the same port twice for one Env.
func (e *Env) freePort() (int, error) {
	e.portsMu.Lock()
	defer e.portsMu.Unlock()
	for range 16 {
		port, err := FreePort()
		if err != nil {
			return 0, err
		}
		if !e.ports[port] {
			if e.ports == nil {
				e.ports = map[int]bool{}
			}
			e.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("kubetest: no free port this Env has not handed out already")
}

// addUser is envtest's AddUser, one at a time.
func (e *Env) addUser(user string, groups []string) (*envtest.AuthenticatedUser, error) {
	e.usersMu.Lock()
	defer e.usersMu.Unlock()
	return e.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
}

// Option changes how Start runs the environment.
type Option func(*options)

type options struct {
	verbose     bool
	controllers bool
	// leftOut are the API groups whose CRDs Start does not install.
	leftOut map[string]bool
}

// Verbose sends the output of etcd, kube-apiserver and kubevirt-webhooks to
// stderr. Setting PADDOCK_KUBETEST_VERBOSE=1 does the same.
func Verbose() Option { return func(o *options) { o.verbose = true } }

// Start runs etcd, kube-apiserver and kubevirt-webhooks on free loopback
// ports, installs the CRDs and waits until they are established, registers
// KubeVirt's webhooks and waits until the API server calls them, and creates
// the common cluster instancetypes and preferences. Call Stop when done.
func Start(ctx context.Context, opts ...Option) (_ *Env, retErr error) {
	o := options{verbose: os.Getenv("PADDOCK_KUBETEST_VERBOSE") == "1"}
	for _, opt := range opts {
		opt(&o)
	}

	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	tools := []string{"kube-apiserver", "etcd", "kubevirt-webhooks"}
	if o.controllers {
		tools = append(tools, "kube-controller-manager", "virt-controller")
	}
	binDir, err := toolsDir(ctx, root, tools)
	if err != nil {
		return nil, err
	}
	reapOrphans(binDir)
	reapStaleDirs()

	all, err := embeddedCRDs()
	if err != nil {
		return nil, err
	}
	crds, leftOut := o.splitLeftOut(all)

	// Everything this Env writes lives under tmpDir, which records its owner
	// so a later Start can remove it if the owner died without Stop.
	tmpDir, err := os.MkdirTemp("", tmpDirPrefix)
	if err != nil {
		return nil, err
	}
	e := &Env{BinDir: binDir, RepoRoot: root, tmpDir: tmpDir, leftOut: leftOut}
	defer func() {
		if retErr != nil {
			_ = e.Stop()
		}
	}()
	if err := os.WriteFile(filepath.Join(tmpDir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return nil, err
	}
	for _, d := range []string{"apiserver", "etcd"} {
		if err := os.Mkdir(filepath.Join(tmpDir, d), 0o700); err != nil {
			return nil, err
		}
	}

	noExisting := false
	e.env = &envtest.Environment{
		BinaryAssetsDirectory:    binDir,
		UseExistingCluster:       &noExisting,
		AttachControlPlaneOutput: o.verbose,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
		CRDInstallOptions: envtest.CRDInstallOptions{
			CRDs:         crds,
			MaxTime:      2 * time.Minute,
			PollInterval: 50 * time.Millisecond,
		},
	}
	e.env.ControlPlane.GetAPIServer().Path = filepath.Join(binDir, "kube-apiserver")
	e.env.ControlPlane.GetAPIServer().CertDir = filepath.Join(tmpDir, "apiserver")
	e.env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(binDir, "etcd"), DataDir: filepath.Join(tmpDir, "etcd")}
	// envtest would take their ports from the kernel's ephemeral range,
	// where a client's outgoing connection can take one before the process
	// listens on it (FreePort).
	if err := e.choosePorts(); err != nil {
		return nil, err
	}
	// Tests don't need their data to survive a power cut.
	e.env.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "true")
	if err := e.configureAudit(); err != nil {
		return nil, err
	}

	// kubevirt-webhooks spends seconds initializing KubeVirt's packages
	// before main runs: launch it first, and let it wait for its kubeconfig.
	if err := e.launchWebhooks(o.verbose); err != nil {
		return nil, err
	}
	cfg, err := e.env.Start()
	if err != nil {
		return nil, fmt.Errorf("kubetest: start kube-apiserver and etcd from %s: %w", binDir, err)
	}
	e.Config = cfg
	if err := e.writeWebhookKubeconfig(); err != nil {
		return nil, err
	}
	if err := waitEstablished(ctx, cfg, crds); err != nil {
		return nil, err
	}
	if err := e.waitWebhooksReady(ctx); err != nil {
		return nil, err
	}
	if err := e.registerWebhooks(ctx); err != nil {
		return nil, err
	}
	if err := e.createInstancetypes(ctx); err != nil {
		return nil, err
	}
	if o.controllers {
		if err := e.startControllers(ctx, o.verbose); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Stop stops the stand-ins and controllers, the webhook server,
// kube-apiserver and etcd and removes their
// files. It is safe to call more than once.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		var errs []error
		e.stopControllers()
		if e.hookCmd != nil && e.hookCmd.Process != nil {
			_ = e.hookCmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.hookDone:
			case <-time.After(10 * time.Second):
				_ = e.hookCmd.Process.Kill()
				<-e.hookDone
			}
		}
		if e.env != nil {
			// Safe after a partial start: envtest stops what it started.
			if err := e.env.Stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if e.tmpDir != "" {
			if err := os.RemoveAll(e.tmpDir); err != nil {
				errs = append(errs, err)
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

// ConfigFor returns a config that authenticates as user, in groups (besides
// system:authenticated, which the API server adds), with a client
// certificate signed by the CA the API server trusts. The user can do only
// what RBAC grants it.
func (e *Env) ConfigFor(user string, groups ...string) (*rest.Config, error) {
	u, err := e.addUser(user, groups)
	if err != nil {
		return nil, fmt.Errorf("kubetest: add user %s: %w", user, err)
	}
	return u.Config(), nil
}

// ServiceAccountConfig returns a config that authenticates as the service
// account namespace/name would (same user name and groups), so bindings whose
// subject is that ServiceAccount apply to it.
func (e *Env) ServiceAccountConfig(namespace, name string) (*rest.Config, error) {
	return e.ConfigFor("system:serviceaccount:"+namespace+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+namespace)
}

// Kubeconfig returns the contents of a kubeconfig file that authenticates as
// user in groups (as ConfigFor does), e.g. for a subprocess.
func (e *Env) Kubeconfig(user string, groups ...string) ([]byte, error) {
	u, err := e.addUser(user, groups)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// CreateNamespace creates a namespace named prefix plus a random suffix and
// returns its name.
func (e *Env) CreateNamespace(ctx context.Context, prefix string) (string, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return "", err
	}
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return ns.Name, nil
}

// repoRoot finds the paddock module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module paddock\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: no paddock go.mod above the working directory")
		}
		dir = parent
	}
}

// toolsDir asks hack/kube-tools.sh where the binaries are, and whether they
// are built and current. With PADDOCK_KUBETEST_BUILD=1 it builds them.
func toolsDir(ctx context.Context, root string, tools []string) (string, error) {
	script := filepath.Join(root, "hack", "kube-tools.sh")
	args := append([]string{script}, tools...)
	build := os.Getenv("PADDOCK_KUBETEST_BUILD") == "1"
	if !build {
		args = append(args[:1], append([]string{"--check"}, args[1:]...)...)
	}
	cmd := exec.CommandContext(ctx, "bash", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if build {
		cmd.Stderr = os.Stderr
	} else {
		cmd.Stderr = &stderr
	}
	err := cmd.Run()
	dir := strings.TrimSpace(stdout.String())
	if err != nil {
		return "", fmt.Errorf("kubetest: the test binaries are not ready (%s): %v\n"+
			"Build them once with:  hack/kube-tools.sh   (about 15-20 minutes cold on 2 cores; then cached in %s)\n"+
			"or set PADDOCK_KUBETEST_BUILD=1 to build them from the test (give go test a -timeout of 30m).",
			strings.TrimSpace(stderr.String()), err, dir)
	}
	return dir, nil
}

// embeddedCRDs decodes the generated CRDs.
func embeddedCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return decodeCRDs(crdFS, "crds")
}

// decodeCRDs decodes every CRD below dir of fsys, strictly.
func decodeCRDs(fsys embed.FS, dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fsys.ReadFile(p)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, crd); err != nil {
			return fmt.Errorf("kubetest: %s: %w", p, err)
		}
		crds = append(crds, crd)
		return nil
	})
	return crds, err
}

// CRDs returns the CustomResourceDefinitions Start installs.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) { return embeddedCRDs() }

func waitEstablished(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	gvr := apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	deadline := time.Now().Add(2 * time.Minute)
	for _, crd := range crds {
		for {
			u, err := dyn.Resource(gvr).Get(ctx, crd.Name, metav1.GetOptions{})
			if err == nil {
				got := &apiextensionsv1.CustomResourceDefinition{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, got); err != nil {
					return err
				}
				if crdCondition(got, apiextensionsv1.Established) && crdCondition(got, apiextensionsv1.NamesAccepted) {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kubetest: CRD %s not established: %v", crd.Name, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func crdCondition(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == t {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// launchWebhooks starts kubevirt-webhooks on a free loopback port with a
// serving certificate from a CA of its own. It waits for the kubeconfig writeWebhookKubeconfig writes.
func (e *Env) launchWebhooks(verbose bool) error {
	certDir := filepath.Join(e.tmpDir, "webhook-certs")
	ca, err := servingCert(certDir)
	if err != nil {
		return fmt.Errorf("kubetest: webhook certificates: %w", err)
	}
	e.hookCA = ca
	port, err := e.freePort()
	if err != nil {
		return err
	}
	e.hookLog = filepath.Join(e.tmpDir, "kubevirt-webhooks.log")
	logFile, err := os.Create(e.hookLog)
	if err != nil {
		return err
	}
	e.hookCmd = exec.Command(filepath.Join(e.BinDir, "kubevirt-webhooks"),
		"--kubeconfig", e.hookKubeconfigPath(),
		"--wait-for-kubeconfig", "5m",
		"--bind-address", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--tls-cert-file", filepath.Join(certDir, "tls.crt"),
		"--tls-private-key-file", filepath.Join(certDir, "tls.key"),
	)
	var out io.Writer = logFile
	if verbose {
		out = io.MultiWriter(logFile, os.Stderr)
	}
	e.hookCmd.Stdout, e.hookCmd.Stderr = out, out
	e.hookCmd.SysProcAttr = childProcAttr()
	if err := e.hookCmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("kubetest: start kubevirt-webhooks: %w", err)
	}
	e.hookDone = make(chan struct{})
	go func() {
		_ = e.hookCmd.Wait()
		logFile.Close()
		close(e.hookDone)
	}()
	e.WebhookURL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return nil
}

// choosePorts sets the ports kube-apiserver and etcd (clients and peers)
// listen on, from freePort.
func (e *Env) choosePorts() error {
	var ports [3]int
	for i := range ports {
		p, err := e.freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	api := e.env.ControlPlane.GetAPIServer()
	api.SecureServing.Address, api.SecureServing.Port = "127.0.0.1", strconv.Itoa(ports[0])
	e.env.ControlPlane.Etcd.URL = &url.URL{Scheme: "http", Host: addr(ports[1])}
	e.env.ControlPlane.Etcd.Configure().Set("listen-peer-urls", "http://"+addr(ports[2]))
	return nil
}

func (e *Env) hookKubeconfigPath() string {
	return filepath.Join(e.tmpDir, "kubevirt-webhooks.kubeconfig")
}

// writeWebhookKubeconfig gives kubevirt-webhooks an administrator's
// credentials (virt-api's service account may read everything its handlers
// read).
func (e *Env) writeWebhookKubeconfig() error {
	kubeconfig, err := e.Kubeconfig("kubevirt-webhooks", "system:masters")
	if err != nil {
		return err
	}
	tmp := e.hookKubeconfigPath() + ".tmp"
	if err := os.WriteFile(tmp, kubeconfig, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, e.hookKubeconfigPath())
}

// waitWebhooksReady waits until kubevirt-webhooks answers on /healthz.
func (e *Env) waitWebhooksReady(ctx context.Context) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.hookCA)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := client.Get(e.WebhookURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-e.hookDone:
			return fmt.Errorf("kubetest: kubevirt-webhooks exited: %s", e.hookLogTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: kubevirt-webhooks not ready after 3m: %s", e.hookLogTail())
		}
	}
}

func (e *Env) hookLogTail() string {
	b, _ := os.ReadFile(e.hookLog)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// registerWebhooks creates virt-operator's webhook configurations with the
// clientConfig pointed at the local server, then waits until the API server
// calls both the mutating and the validating webhook.
func (e *Env) registerWebhooks(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	entries, err := fs.ReadDir(webhookFS, "webhooks")
	if err != nil {
		return err
	}
	for _, ent := range entries {
		b, err := webhookFS.ReadFile(path.Join("webhooks", ent.Name()))
		if err != nil {
			return err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(b, &tm); err != nil {
			return err
		}
		switch tm.Kind {
		case "MutatingWebhookConfiguration":
			c := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(b, c); err != nil {
				return fmt.Errorf("kubetest: %s: %w", ent.Name(), err)
			}
			for i := range c.Webhooks {
				e.pointAtLocal(&c.Webhooks[i].ClientConfig)
			}
			if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("kubetest: create %s: %w", c.Name, err)
			}
		case "ValidatingWebhookConfiguration":
			c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(b, c); err != nil {
				return fmt.Errorf("kubetest: %s: %w", ent.Name(), err)
			}
			for i := range c.Webhooks {
				e.pointAtLocal(&c.Webhooks[i].ClientConfig)
			}
			if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("kubetest: create %s: %w", c.Name, err)
			}
		default:
			return fmt.Errorf("kubetest: %s: unexpected kind %q", ent.Name(), tm.Kind)
		}
	}
	return e.waitWebhooksActive(ctx)
}

func (e *Env) pointAtLocal(cc *admissionregistrationv1.WebhookClientConfig) {
	p := ""
	if cc.Service != nil && cc.Service.Path != nil {
		p = *cc.Service.Path
	}
	u := e.WebhookURL + p
	cc.URL = &u
	cc.Service = nil
	cc.CABundle = e.hookCA
}

// waitWebhooksActive dry-runs a VirtualMachine whose disk has no volume in
// the default namespace until the validating webhook rejects it, and a valid
// one until the mutating webhook has changed it: the API server picks up new
// webhook configurations asynchronously.
func (e *Env) waitWebhooksActive(ctx context.Context) error {
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	vms := dyn.Resource(schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachines"}).Namespace("default")
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	deadline := time.Now().Add(time.Minute)
	for {
		_, invalidErr := vms.Create(ctx, probeVM("kubetest-probe-invalid", false), dryRun)
		valid, validErr := vms.Create(ctx, probeVM("kubetest-probe-valid", true), dryRun)
		validating := invalidErr != nil && strings.Contains(invalidErr.Error(), "virtualmachine-validator.kubevirt.io")
		mutating := validErr == nil && mutated(valid)
		if validating && mutating {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: KubeVirt webhooks not in effect after 1m (invalid VM: %v; valid VM: %v, mutated %v); webhook log: %s",
				invalidErr, validErr, mutating, e.hookLogTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mutated reports whether KubeVirt's VM mutator has been at vm: on create it
// gives the domain a firmware UUID.
func mutated(vm *unstructured.Unstructured) bool {
	uuid, _, _ := unstructured.NestedString(vm.Object, "spec", "template", "spec", "domain", "firmware", "uuid")
	return uuid != ""
}

func probeVM(name string, withVolume bool) *unstructured.Unstructured {
	spec := map[string]any{
		"domain": map[string]any{
			"devices": map[string]any{
				"disks": []any{map[string]any{"name": "root", "disk": map[string]any{"bus": "virtio"}}},
			},
			"resources": map[string]any{"requests": map[string]any{"memory": "64Mi"}},
		},
	}
	if withVolume {
		spec["volumes"] = []any{map[string]any{
			"name":          "root",
			"containerDisk": map[string]any{"image": "quay.io/kubevirt/cirros-container-disk-demo"},
		}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "VirtualMachine",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"runStrategy": "Halted",
			"template":    map[string]any{"spec": spec},
		},
	}}
}

// createInstancetypes creates the common-instancetypes bundle, through the
// API server and so through KubeVirt's instancetype/preference webhooks.
func (e *Env) createInstancetypes(ctx context.Context) error {
	dyn, err := dynamic.NewForConfig(rest.CopyConfig(e.Config))
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	entries, err := fs.ReadDir(instancetypeFS, "instancetypes")
	if err != nil {
		return err
	}
	for _, ent := range entries {
		b, err := instancetypeFS.ReadFile(path.Join("instancetypes", ent.Name()))
		if err != nil {
			return err
		}
		docs, err := decodeYAMLDocs(b)
		if err != nil {
			return fmt.Errorf("kubetest: %s: %w", ent.Name(), err)
		}
		objs = append(objs, docs...)
	}
	resources := map[string]string{
		"VirtualMachineClusterInstancetype": "virtualmachineclusterinstancetypes",
		"VirtualMachineClusterPreference":   "virtualmachineclusterpreferences",
	}
	work := make(chan *unstructured.Unstructured)
	errc := make(chan error, len(objs))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				gv, err := schema.ParseGroupVersion(o.GetAPIVersion())
				if err != nil {
					errc <- err
					continue
				}
				res, ok := resources[o.GetKind()]
				if !ok {
					errc <- fmt.Errorf("kubetest: unexpected %s in instancetype bundle", o.GetKind())
					continue
				}
				if _, err := dyn.Resource(gv.WithResource(res)).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					errc <- fmt.Errorf("kubetest: create %s %s: %w", o.GetKind(), o.GetName(), err)
				}
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// decodeYAMLDocs splits a multi-document YAML stream into objects.
func decodeYAMLDocs(b []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}
