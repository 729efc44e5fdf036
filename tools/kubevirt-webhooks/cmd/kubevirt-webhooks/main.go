// Command kubevirt-webhooks serves KubeVirt's own virt-api admission handlers
// for VirtualMachines (mutating and validating), VirtualMachinePools, the
// VirtualMachine status subresource and instancetypes/preferences, over TLS,
// for a test kube-apiserver.
//
// It wires the handlers the way virt-api does (kubevirt.io/kubevirt
// pkg/virt-api/api.go, Run and register*Webhook*): a KubeVirt client and
// informers against the API server named by --kubeconfig, and a
// virtconfig.ClusterConfig built from a live CRD informer plus a KubeVirt CR.
// The KubeVirt CR is not read from the cluster (the test cluster has no
// kubevirts CRD); it is a fixed object in a local informer, holding the
// configuration given by --kubevirt-config or KubeVirt's defaults.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubecli"

	"kubevirt.io/kubevirt/pkg/controller"
	"kubevirt.io/kubevirt/pkg/virt-api/webhooks"
	mutating_webhook "kubevirt.io/kubevirt/pkg/virt-api/webhooks/mutating-webhook"
	validating_webhook "kubevirt.io/kubevirt/pkg/virt-api/webhooks/validating-webhook"
	virtconfig "kubevirt.io/kubevirt/pkg/virt-config"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"

	"paddock/tools/kubevirt-webhooks/internal/served"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubevirt-webhooks:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig of the API server the admitters read from (required)")
		bind       = flag.String("bind-address", "127.0.0.1", "address to listen on")
		port       = flag.Int("port", 0, "TLS port to listen on (required)")
		certFile   = flag.String("tls-cert-file", "", "serving certificate, PEM (required)")
		keyFile    = flag.String("tls-private-key-file", "", "serving key, PEM (required)")
		namespace  = flag.String("namespace", "kubevirt", "KubeVirt install namespace; names KubeVirt's own service accounts")
		kvConfig   = flag.String("kubevirt-config", "", "optional YAML/JSON file with a KubeVirtConfiguration (the KubeVirt CR's spec.configuration)")
		waitConfig = flag.Duration("wait-for-kubeconfig", 0, "wait this long for --kubeconfig to appear (lets the process start, and pay for KubeVirt's package initialization, before the API server is up)")
		version    = flag.Bool("version", false, "print the KubeVirt version the handlers come from and exit")
	)
	flag.Parse()
	if *version {
		fmt.Println("kubevirt.io/kubevirt v1.8.0")
		return nil
	}
	if *kubeconfig == "" || *port == 0 || *certFile == "" || *keyFile == "" {
		flag.Usage()
		return errors.New("--kubeconfig, --port, --tls-cert-file and --tls-private-key-file are required")
	}

	if err := waitForFile(*kubeconfig, *waitConfig); err != nil {
		return err
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restConfig.QPS, restConfig.Burst = 200, 400
	virtCli, err := kubecli.GetKubevirtClientFromRESTConfig(restConfig)
	if err != nil {
		return fmt.Errorf("kubevirt client: %w", err)
	}

	kv, err := kubeVirtCR(*namespace, *kvConfig)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// As in virt-api's Run: informers from KubeVirt's own factory.
	factory := controller.NewKubeInformerFactory(virtCli.RestClient(), virtCli, nil, *namespace)
	crdInformer := factory.CRD()
	namespaceInformer := factory.Namespace()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	kubeVirtInformer := staticInformer(kv)
	go kubeVirtInformer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), kubeVirtInformer.HasSynced) {
		return errors.New("kubevirt informer did not sync")
	}

	clusterConfig, err := virtconfig.NewClusterConfig(crdInformer, kubeVirtInformer, *namespace)
	if err != nil {
		return fmt.Errorf("cluster config: %w", err)
	}
	var dataSourceInformer cache.SharedIndexInformer
	if clusterConfig.HasDataSourceAPI() {
		dataSourceInformer = factory.DataSource()
	} else {
		dataSourceInformer = factory.DummyDataSource()
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	informers := &webhooks.Informers{
		DataSourceInformer: dataSourceInformer,
		NamespaceInformer:  namespaceInformer,
	}
	serviceAccounts := webhooks.KubeVirtServiceAccounts(*namespace)

	mux := http.NewServeMux()
	handlers := map[string]http.HandlerFunc{
		components.VMMutatePath: func(w http.ResponseWriter, r *http.Request) {
			mutating_webhook.ServeVMs(w, r, clusterConfig, virtCli)
		},
		components.VMValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeVMs(w, r, clusterConfig, virtCli, informers, serviceAccounts)
		},
		components.VMPoolValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeVMPool(w, r, clusterConfig, serviceAccounts)
		},
		components.StatusValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeStatusValidation(w, r, clusterConfig, virtCli, informers, serviceAccounts)
		},
		components.VMInstancetypeValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeVmInstancetypes(w, r)
		},
		components.VMClusterInstancetypeValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeVmClusterInstancetypes(w, r)
		},
		components.VMPreferenceValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeVmPreferences(w, r)
		},
		components.VMClusterPreferenceValidatePath: func(w http.ResponseWriter, r *http.Request) {
			validating_webhook.ServeVmClusterPreferences(w, r)
		},
	}
	for _, p := range append(append([]string{}, served.MutatingPaths...), served.ValidatingPaths...) {
		h, ok := handlers[p]
		if !ok {
			return fmt.Errorf("no handler for served path %s", p)
		}
		mux.HandleFunc(p, h)
	}
	var ready atomic.Bool
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("load serving certificate: %w", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*bind, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           logRequests(mux),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	ready.Store(true)
	fmt.Fprintf(os.Stderr, "kubevirt-webhooks: serving on https://%s\n", ln.Addr())

	select {
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	case err := <-errc:
		return err
	}
}

// logRequests logs each admission request's path, status and duration.
func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.URL.Path != "/healthz" {
			fmt.Fprintf(os.Stderr, "kubevirt-webhooks: %s %s %s %d %s\n", start.Format("15:04:05.000"), r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Microsecond))
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// waitForFile waits up to d for a non-empty file at path.
func waitForFile(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		fi, err := os.Stat(path)
		if err == nil && fi.Size() > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("empty file")
			}
			return fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kubeVirtCR returns the KubeVirt CR the ClusterConfig reads, as virt-operator
// would have left it once deployed.
func kubeVirtCR(namespace, configFile string) (*v1.KubeVirt, error) {
	kv := &v1.KubeVirt{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "KubeVirt"},
		ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: namespace, ResourceVersion: "1"},
		Status: v1.KubeVirtStatus{
			Phase:               v1.KubeVirtPhaseDeployed,
			DefaultArchitecture: runtime.GOARCH,
		},
	}
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return nil, err
		}
		if err := yaml.UnmarshalStrict(b, &kv.Spec.Configuration); err != nil {
			return nil, fmt.Errorf("parse %s: %w", configFile, err)
		}
	}
	return kv, nil
}

// staticInformer is a shared informer whose only object is obj.
func staticInformer(obj *v1.KubeVirt) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListFunc: func(metav1.ListOptions) (k8sruntime.Object, error) {
			return &v1.KubeVirtList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: []v1.KubeVirt{*obj}}, nil
		},
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) {
			return watch.NewFake(), nil
		},
	}
	return cache.NewSharedIndexInformer(lw, &v1.KubeVirt{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
