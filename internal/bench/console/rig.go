package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/subresources"

	"paddock/internal/kubetest"
	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/web"
	"paddock/templates"
)

// provisionerUser is the identity Paddock's cluster client runs as: bound
// to exactly deploy/rbac.yaml, as in production.
const provisionerUser = "paddock-bench-console"

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo bench@example"

// rig is everything one run needs: the API server with the console
// stand-in behind its aggregator, a database with one running request of
// team payments, Paddock's handler on a loopback port, and a developer of
// that team signed in to it.
type rig struct {
	env     *kubetest.Env
	standIn *kubetest.ConsoleStandIn
	pool    *pgxpool.Pool
	cluster *provision.Cluster
	srv     *httptest.Server
	jar     http.CookieJar
	reqID   int64
	ns, vm  string
	// screen describes the stand-in's framebuffer, from its ServerInit.
	screen string
	paths  []path
}

// path is one way to the same console.
type path struct {
	name string
	open func(ctx context.Context, kind provision.ConsoleKind) (io.ReadWriteCloser, error)
}

func setup(ctx context.Context, o options, log *slog.Logger) (_ *rig, err error) {
	r := &rig{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	log.Info("starting kube-apiserver and etcd, and the console stand-in behind the aggregator")
	if r.env, err = kubetest.Start(ctx); err != nil {
		return nil, err
	}
	if err = r.env.ApplyPaddockRBAC(ctx, provisionerUser); err != nil {
		return nil, err
	}
	if r.standIn, err = r.env.ServeConsoles(ctx); err != nil {
		return nil, err
	}
	cfg, err := r.env.ConfigFor(provisionerUser)
	if err != nil {
		return nil, err
	}
	if r.cluster, err = provision.NewKubernetesCluster(cfg); err != nil {
		return nil, err
	}
	if r.pool, err = freshDB(ctx, o.dbURL); err != nil {
		return nil, err
	}
	st := store.New(r.pool)
	jobs, err := river.NewClient(riverpgxv5.New(r.pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	st.SetJobClient(jobs)
	req, err := runningRequest(ctx, st)
	if err != nil {
		return nil, err
	}
	r.reqID, r.ns, r.vm = req.ID, req.VM.Namespace, req.VM.Name
	if err = r.runInstance(ctx); err != nil {
		return nil, err
	}

	srv := httptest.NewServer(web.New(web.Config{DevSignIn: true, ClusterName: "kubernetes"}, st, r.cluster, nil,
		slog.New(slog.DiscardHandler)).Handler())
	r.srv = srv
	if r.jar, err = signIn(srv.URL, "developer"); err != nil {
		return nil, err
	}
	r.paths = []path{
		{name: "direct", open: r.openDirect},
		{name: "aggregator", open: r.openAggregator},
		{name: "Paddock", open: r.openPaddock},
	}
	return r, nil
}

func (r *rig) close() {
	if r.srv != nil {
		r.srv.Close()
	}
	if r.pool != nil {
		r.pool.Close()
	}
	if r.standIn != nil {
		r.standIn.Kill()
	}
	if r.env != nil {
		_ = r.env.Stop()
	}
}

// runningRequest stores a request of team payments whose VM the
// provisioner has made and which runs, as the reconcile job and the
// watcher would record it.
func runningRequest(ctx context.Context, st *store.Store) (store.Request, error) {
	team, err := st.EnsureTeam(ctx, "payments", "payments")
	if err != nil {
		return store.Request{}, err
	}
	dev, err := st.EnsureUser(ctx, "developer", "developer", store.RoleDeveloper, &team.ID)
	if err != nil {
		return store.Request{}, err
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		return store.Request{}, err
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			return store.Request{}, err
		}
	}
	req, err := st.SubmitRequest(ctx, store.NewRequest{TeamID: team.ID, Requester: dev, Template: "ubuntu-2404",
		Size: "small", Name: "console-bench", SSHPublicKey: sshKey, LeaseDays: 7, Justification: "console benchmark"})
	if err != nil {
		return store.Request{}, err
	}
	if req.State != store.StateApproved {
		return store.Request{}, fmt.Errorf("request %d is %s, not auto-approved", req.ID, req.State)
	}
	tv, err := st.TemplateVersion(ctx, req.TemplateID, req.TemplateVersion)
	if err != nil {
		return store.Request{}, err
	}
	vm, err := provision.Render(tv.Spec, req)
	if err != nil {
		return store.Request{}, err
	}
	manifest, err := provision.Manifest(vm)
	if err != nil {
		return store.Request{}, err
	}
	if ok, err := st.RecordVM(ctx, req.ID, store.VM{Namespace: req.Namespace, Name: req.Name, UID: "uid-console-bench",
		Status: "Running", Manifest: manifest}); err != nil || !ok {
		return store.Request{}, fmt.Errorf("record the VM of request %d (recorded %v): %w", req.ID, ok, err)
	}
	if _, err := st.Transition(ctx, req.ID, store.StateRunning, store.ActorCluster, "state", "", store.StateProvisioning); err != nil {
		return store.Request{}, err
	}
	req, err = st.Request(ctx, req.ID)
	if err != nil {
		return store.Request{}, err
	}
	if req.VM == nil {
		return store.Request{}, fmt.Errorf("request %d has no VM after RecordVM", req.ID)
	}
	return req, nil
}

// runInstance creates the VM's instance and writes it a Running status, as
// virt-controller and virt-handler would.
func (r *rig) runInstance(ctx context.Context) error {
	admin, err := provision.NewKubernetesCluster(r.env.Config)
	if err != nil {
		return err
	}
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	vmis := admin.Virt.KubevirtV1().VirtualMachineInstances(r.ns)
	vmi, err := vmis.Create(ctx, &virtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: r.vm},
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
		return err
	}
	vmi.Status.Phase = virtv1.Running
	_, err = vmis.Update(ctx, vmi, metav1.UpdateOptions{})
	return err
}

// openDirect opens the console with a websocket straight to the stand-in,
// as virt-api would be reached without the API server in between.
func (r *rig) openDirect(ctx context.Context, kind provision.ConsoleKind) (io.ReadWriteCloser, error) {
	u := fmt.Sprintf("wss://127.0.0.1:%d/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/%s",
		r.standIn.ConsolePort(), r.ns, r.vm, kind)
	d := websocket.Dialer{TLSClientConfig: r.standIn.ClientTLS(), Subprotocols: []string{subresources.PlainStreamProtocolName},
		HandshakeTimeout: 10 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	ws, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("dial the stand-in: %w (%s)", err, status(resp))
	}
	return &wsConn{ws: ws}, nil
}

// openAggregator opens the console as Paddock's bridge does, through the
// API server's aggregator, without the bridge.
func (r *rig) openAggregator(ctx context.Context, kind provision.ConsoleKind) (io.ReadWriteCloser, error) {
	return r.cluster.OpenConsole(ctx, r.ns, r.vm, kind)
}

// openPaddock opens the console as the browser does: a websocket to
// Paddock's console handler with the developer's session cookie, from
// Paddock's own origin.
func (r *rig) openPaddock(ctx context.Context, kind provision.ConsoleKind) (io.ReadWriteCloser, error) {
	k := "vnc"
	if kind == provision.ConsoleSerial {
		k = "serial"
	}
	u := "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/requests/" + strconv.FormatInt(r.reqID, 10) + "/console/" + k + "/ws"
	d := websocket.Dialer{Jar: r.jar, HandshakeTimeout: 10 * time.Second, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	ws, resp, err := d.DialContext(ctx, u, http.Header{"Origin": {r.srv.URL}})
	if err != nil {
		return nil, fmt.Errorf("dial Paddock: %w (%s)", err, status(resp))
	}
	return &wsConn{ws: ws}, nil
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no answer"
	}
	return resp.Status
}

// wsConn reads and writes a console websocket as a byte stream of binary
// frames, as noVNC and KubeVirt's client do.
type wsConn struct {
	ws  *websocket.Conn
	buf []byte
}

func (c *wsConn) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return 0, err
		}
		c.buf = msg
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}

func signIn(base, login string) (http.CookieJar, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/dev/signin", url.Values{"login": {login}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("sign in as %s: %d", login, resp.StatusCode)
	}
	return jar, nil
}

// freshDB drops and re-creates the database of dbURL and migrates it.
func freshDB(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
