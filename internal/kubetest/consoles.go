package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/color"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"kubevirt.io/client-go/subresources"

	"paddock/internal/guestconsole"
)

// ConsoleColour is the solid colour of every screen the console stand-in
// serves.
var ConsoleColour = color.RGBA{R: 0x2e, G: 0x8b, B: 0x57, A: 255}

// ConsoleStandIn stands in for virt-api and virt-handler behind the API
// server's aggregator: the API server proxies
// /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/vnc
// and /console to it (an APIService v1.subresources.kubevirt.io and an
// ExternalName Service pointing at loopback, as virt-operator registers
// virt-api), and it upgrades them as virt-api does (websocket, subprotocol
// plain.kubevirt.io, binary frames). Behind the websocket run a real RFB
// 3.8 server whose desktop name is the instance's name, on a screen of
// ConsoleColour, and a serial line with a login prompt that echoes; and it
// answers .../vnc/screenshot with a PNG of that screen, as virt-api does
// with QEMU's. It does not look the instance up: callers check it runs, as
// Paddock does.
type ConsoleStandIn struct {
	srv *http.Server
	ln  net.Listener
	ca  []byte

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
	// Sessions counts the upgrades served.
	sessions int
	// screenshots counts the screenshots served.
	screenshots int
}

const (
	consoleAPIGroup  = "subresources.kubevirt.io"
	consoleNamespace = "kubevirt"
	consoleService   = "virt-api"
)

// ServeConsoles starts the console stand-in on a loopback port and
// registers it with the API server, then waits until the API server
// proxies to it. Stop it with Kill (Env.Stop does too).
func (e *Env) ServeConsoles(ctx context.Context) (*ConsoleStandIn, error) {
	certDir := filepath.Join(e.tmpDir, "console-certs")
	ca, err := servingCert(certDir, consoleService+"."+consoleNamespace+".svc")
	if err != nil {
		return nil, fmt.Errorf("kubetest: console stand-in certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		// The aggregator's proxy speaks HTTP/1.1 for upgrades.
		NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	c := &ConsoleStandIn{ln: ln, ca: ca, conns: map[*websocket.Conn]struct{}{}}
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	port := ln.Addr().(*net.TCPAddr).Port
	if err := e.registerConsoleAPI(ctx, ca, port); err != nil {
		c.Kill()
		return nil, err
	}
	return c, nil
}

// Kill stops the stand-in at once, dropping every open console, as a
// crashed virt-handler would.
func (c *ConsoleStandIn) Kill() {
	_ = c.srv.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for ws := range c.conns {
		_ = ws.NetConn().Close()
	}
}

// Sessions returns how many consoles the stand-in has served.
func (c *ConsoleStandIn) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// Screenshots returns how many screenshots the stand-in has served.
func (c *ConsoleStandIn) Screenshots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.screenshots
}

// standInScreen is the screen of every instance the stand-in serves.
func standInScreen() *guestconsole.Screen {
	return guestconsole.NewScreen(320, 200, ConsoleColour)
}

// ServeHTTP answers discovery, serves screenshots and upgrades the console
// subresources.
func (c *ConsoleStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/apis/" + consoleAPIGroup + "/v1"
	switch {
	case r.URL.Path == prefix:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: consoleAPIGroup + "/v1",
			APIResources: []metav1.APIResource{
				{Name: "virtualmachineinstances/vnc", Namespaced: true, Kind: "VirtualMachineInstance", Verbs: metav1.Verbs{"get"}},
				{Name: "virtualmachineinstances/console", Namespaced: true, Kind: "VirtualMachineInstance", Verbs: metav1.Verbs{"get"}},
				{Name: "virtualmachineinstances/vnc/screenshot", Namespaced: true, Kind: "VirtualMachineInstance", Verbs: metav1.Verbs{"get"}},
			},
		})
		return
	case strings.HasPrefix(r.URL.Path, prefix+"/namespaces/"):
	default:
		http.NotFound(w, r)
		return
	}
	// .../namespaces/{ns}/virtualmachineinstances/{name}/{vnc|console|vnc/screenshot}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, prefix+"/namespaces/"), "/")
	if len(parts) == 5 && parts[1] == "virtualmachineinstances" && parts[3] == "vnc" && parts[4] == "screenshot" {
		c.serveScreenshot(w, r)
		return
	}
	if len(parts) != 4 || parts[1] != "virtualmachineinstances" || (parts[3] != "vnc" && parts[3] != "console") {
		http.NotFound(w, r)
		return
	}
	name, kind := parts[2], parts[3]
	up := websocket.Upgrader{Subprotocols: []string{subresources.PlainStreamProtocolName},
		CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.conns[ws] = struct{}{}
	c.sessions++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.conns, ws)
		c.mu.Unlock()
	}()
	conn := &binaryConn{ws: ws}
	if kind == "vnc" {
		_ = guestconsole.ServeRFB(conn, name, standInScreen(), nil)
	} else {
		_ = guestconsole.ServeSerial(conn, name)
	}
}

// serveScreenshot answers GET .../vnc/screenshot with a PNG of the screen
// the RFB server shows.
func (c *ConsoleStandIn) serveScreenshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b, err := standInScreen().PNG()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.mu.Lock()
	c.screenshots++
	c.mu.Unlock()
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(b)
}

// binaryConn carries a byte stream in binary websocket frames.
type binaryConn struct {
	ws  *websocket.Conn
	buf []byte
	wmu sync.Mutex
}

func (b *binaryConn) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		_, msg, err := b.ws.ReadMessage()
		if err != nil {
			return 0, err
		}
		b.buf = msg
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *binaryConn) Write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if err := b.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (b *binaryConn) Close() error { return b.ws.Close() }

// registerConsoleAPI creates the Service and APIService virt-operator
// creates for virt-api, pointed at the stand-in on loopback, and waits
// until the API server has found the group available.
func (e *Env) registerConsoleAPI(ctx context.Context, ca []byte, port int) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, cs, consoleNamespace); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: consoleService, Namespace: consoleNamespace},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port)}}},
	}
	if _, err := cs.CoreV1().Services(consoleNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: create Service %s: %w", consoleService, err)
	}
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	apiServices := dyn.Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	name := "v1." + consoleAPIGroup
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"group": consoleAPIGroup, "version": "v1",
			"groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"caBundle": base64.StdEncoding.EncodeToString(ca),
			"service":  map[string]any{"name": consoleService, "namespace": consoleNamespace, "port": int64(port)},
		},
	}}
	if _, err := apiServices.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: create APIService %s: %w", name, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := apiServices.Get(ctx, name, metav1.GetOptions{})
		if err == nil && apiServiceAvailable(got) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: APIService %s not available after 1m: %v %v", name, err, got)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func apiServiceAvailable(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" {
			return m["status"] == "True"
		}
	}
	return false
}

// ConsolePort returns the port of the stand-in (for a direct connection
// that bypasses the API server, as a baseline).
func (c *ConsoleStandIn) ConsolePort() int { return c.ln.Addr().(*net.TCPAddr).Port }

// ClientTLS returns a TLS configuration that verifies the stand-in's
// certificate as the API server does (the CA of the APIService, the
// Service's DNS name), for a direct connection to ConsolePort.
func (c *ConsoleStandIn) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	return &tls.Config{RootCAs: pool, ServerName: consoleService + "." + consoleNamespace + ".svc", MinVersion: tls.VersionTLS12}
}
