package provision

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"net"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"paddock/internal/guestconsole"
)

// ConsoleKind names a console of a VM: its screen (VNC) or its serial line.
// The values are KubeVirt's subresource names.
type ConsoleKind string

// The consoles of a VM.
const (
	ConsoleVNC    ConsoleKind = "vnc"
	ConsoleSerial ConsoleKind = "console"
)

// ErrNotRunning is returned when a VM has no running instance to connect
// a console to.
var ErrNotRunning = errors.New("the VM is not running")

// ErrConsoleUnavailable is returned when the cluster refuses or fails to
// open a console of a running VM.
var ErrConsoleUnavailable = errors.New("the console could not be opened")

// OpenConsole connects to a console of the instance ns/name: on a real
// cluster through KubeVirt's subresource API
// (/apis/subresources.kubevirt.io/v1/.../virtualmachineinstances/{name}/vnc
// or /console, served by virt-api behind the API server's aggregator); on
// the simulated cluster to a synthetic screen or login prompt. The
// connection carries the console's raw bytes (RFB for VNC); closing it ends
// the session.
func (c *Cluster) OpenConsole(ctx context.Context, ns, name string, kind ConsoleKind) (io.ReadWriteCloser, error) {
	if kind != ConsoleVNC && kind != ConsoleSerial {
		return nil, fmt.Errorf("console kind %q: %w", kind, ErrConsoleUnavailable)
	}
	vmi, err := c.runningInstance(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	if c.Simulated || c.rest == nil {
		return c.simulatedConsole(vmi, kind), nil
	}
	return c.kubevirtConsole(ctx, ns, name, kind)
}

// runningInstance gets the VM's instance and checks that it runs: virt-api
// would refuse otherwise, with a less useful message.
func (c *Cluster) runningInstance(ctx context.Context, ns, name string) (*virtv1.VirtualMachineInstance, error) {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	vmi, err := c.Virt.KubevirtV1().VirtualMachineInstances(ns).Get(cctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("VirtualMachineInstance %s/%s: %w", ns, name, ErrNotRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("get VirtualMachineInstance %s/%s: %w", ns, name, err)
	}
	if vmi.Status.Phase != virtv1.Running {
		return nil, fmt.Errorf("VirtualMachineInstance %s/%s is %s: %w", ns, name, vmi.Status.Phase, ErrNotRunning)
	}
	return vmi, nil
}

// kubevirtConsole opens the subresource with KubeVirt's own client
// (AsyncSubresourceHelper: a websocket with subprotocol plain.kubevirt.io,
// binary frames). The helper has no context: when ctx ends first, the
// connection it makes later is closed.
func (c *Cluster) kubevirtConsole(ctx context.Context, ns, name string, kind ConsoleKind) (io.ReadWriteCloser, error) {
	type result struct {
		s   kvcorev1.StreamInterface
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := kvcorev1.AsyncSubresourceHelper(c.rest, "virtualmachineinstances", ns, name, string(kind), nil)
		done <- result{s, err}
	}()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	select {
	case r := <-done:
		if r.err != nil {
			return nil, consoleError(ns, name, kind, r.err)
		}
		return streamConn(r.s), nil
	case <-ctx.Done():
	case <-time.After(timeout):
	}
	go func() {
		if r := <-done; r.err == nil {
			streamConn(r.s).Close()
		}
	}()
	return nil, fmt.Errorf("open %s of %s/%s: no answer in time: %w", kind, ns, name, ErrConsoleUnavailable)
}

func consoleError(ns, name string, kind ConsoleKind, err error) error {
	var ae *kvcorev1.AsyncSubresourceError
	if errors.As(err, &ae) && (ae.StatusCode == http.StatusNotFound || ae.StatusCode == http.StatusBadRequest || ae.StatusCode == http.StatusConflict) {
		return fmt.Errorf("open %s of %s/%s: %v: %w", kind, ns, name, err, ErrNotRunning)
	}
	return fmt.Errorf("open %s of %s/%s: %v: %w", kind, ns, name, err, ErrConsoleUnavailable)
}

// streamConn turns KubeVirt's stream into a connection: Stream copies
// between the websocket and a pair of pipes until either side ends, and
// only then lets the helper close the websocket (its AsConn would leave the
// helper waiting for ever).
func streamConn(s kvcorev1.StreamInterface) io.ReadWriteCloser {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		err := s.Stream(kvcorev1.StreamOptions{In: inR, Out: outW})
		if err == nil {
			err = io.EOF
		}
		outW.CloseWithError(err)
		inR.CloseWithError(err)
	}()
	return &pipeConn{r: outR, w: inW}
}

type pipeConn struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeConn) Close() error {
	p.w.Close()
	return p.r.Close()
}

// Simulated consoles: the screen shows the VM's name, status and address;
// the serial line a login prompt. Both end when the instance goes.
var (
	simScreenBG   = color.RGBA{R: 0x1b, G: 0x26, B: 0x3b, A: 255}
	simScreenInk  = color.RGBA{R: 0xe8, G: 0xee, B: 0xf6, A: 255}
	simScreenMute = color.RGBA{R: 0x8a, G: 0xa4, B: 0xc8, A: 255}
)

func (c *Cluster) simulatedConsole(vmi *virtv1.VirtualMachineInstance, kind ConsoleKind) io.ReadWriteCloser {
	server, client := net.Pipe()
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		if kind == ConsoleSerial {
			_ = guestconsole.ServeSerial(server, vmi.Name)
			return
		}
		_ = guestconsole.ServeRFB(server, vmi.Name, SimulatedScreen(vmi), nil)
	}()
	go c.closeWhenGone(vmi.Namespace, vmi.Name, server, stop)
	return client
}

// SimulatedScreen draws what the simulated cluster shows on a VM's screen.
func SimulatedScreen(vmi *virtv1.VirtualMachineInstance) *guestconsole.Screen {
	screen := guestconsole.NewScreen(640, 400, simScreenBG)
	ip := "no address yet"
	if len(vmi.Status.Interfaces) > 0 && vmi.Status.Interfaces[0].IP != "" {
		ip = vmi.Status.Interfaces[0].IP
	}
	screen.Update(func(img *image.RGBA) {
		guestconsole.DrawText(img, 32, 40, 4, vmi.Name, simScreenInk)
		guestconsole.DrawText(img, 32, 120, 3, "status: "+string(vmi.Status.Phase), simScreenInk)
		guestconsole.DrawText(img, 32, 170, 3, "address: "+ip, simScreenInk)
		guestconsole.DrawText(img, 32, 330, 2, "simulated cluster - no guest runs", simScreenMute)
	})
	return screen
}

// closeWhenGone ends a simulated console when its instance is deleted
// (the VM stopped or restarted), as virt-handler does.
func (c *Cluster) closeWhenGone(ns, name string, conn net.Conn, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.runningInstance(ctx, ns, name)
			cancel()
			if errors.Is(err, ErrNotRunning) {
				conn.Close()
				return
			}
		}
	}
}
