// Package guestconsole serves what a guest shows on its consoles, for the
// places where no guest runs: a minimal RFB 3.8 (VNC) server over a
// framebuffer, and a serial line with a login prompt that echoes what is
// typed. The simulated cluster of `portal dev` and the test cluster's
// stand-in for virt-api/virt-handler serve them; with a real KubeVirt, QEMU
// serves the real ones.
package guestconsole

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"sync"
)

// Screen is a framebuffer that an RFB server shows. Draw on it with Update;
// every open connection gets the change.
type Screen struct {
	mu      sync.Mutex
	img     *image.RGBA
	version uint64
	changed chan struct{}
}

// NewScreen returns a screen of the given size filled with bg.
func NewScreen(width, height int, bg color.RGBA) *Screen {
	s := &Screen{img: image.NewRGBA(image.Rect(0, 0, width, height)), changed: make(chan struct{})}
	Fill(s.img, s.img.Bounds(), bg)
	return s
}

// Update lets draw change the framebuffer, then tells the viewers.
func (s *Screen) Update(draw func(img *image.RGBA)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	draw(s.img)
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

// snapshot copies the framebuffer with its version and a channel closed at
// the next change.
func (s *Screen) snapshot() (*image.RGBA, uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img := image.NewRGBA(s.img.Rect)
	copy(img.Pix, s.img.Pix)
	return img, s.version, s.changed
}

// current returns the screen's version and a channel closed at its next change.
func (s *Screen) current() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version, s.changed
}

// Fill paints r of img in c.
func Fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// pixelFormat is RFB's PIXEL_FORMAT; only true colour is supported.
type pixelFormat struct {
	BPP, Depth, BigEndian, TrueColour uint8
	RedMax, GreenMax, BlueMax         uint16
	RedShift, GreenShift, BlueShift   uint8
	_                                 [3]byte
}

// serverFormat is what ServerInit offers: 32-bit little-endian RGB.
var serverFormat = pixelFormat{BPP: 32, Depth: 24, TrueColour: 1, RedMax: 255, GreenMax: 255, BlueMax: 255,
	RedShift: 16, GreenShift: 8, BlueShift: 0}

// Client-to-server message types (RFC 6143, 7.5).
const (
	msgSetPixelFormat           = 0
	msgSetEncodings             = 2
	msgFramebufferUpdateRequest = 3
	msgKeyEvent                 = 4
	msgPointerEvent             = 5
	msgClientCutText            = 6
)

// ServeRFB speaks RFB 3.8 on conn with no authentication, under the desktop
// name name, showing screen: every update is one raw-encoded rectangle of
// the whole screen, sent when the viewer asks for one and, for incremental
// requests, when the screen has changed. onKey, if not nil, gets each key
// press (an X11 keysym). It returns when the viewer leaves or conn fails.
func ServeRFB(conn io.ReadWriteCloser, name string, screen *Screen, onKey func(keysym uint32)) error {
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "RFB 003.008\n"); err != nil {
		return err
	}
	var clientVersion [12]byte
	if _, err := io.ReadFull(r, clientVersion[:]); err != nil {
		return fmt.Errorf("rfb: read client version: %w", err)
	}
	if string(clientVersion[:]) != "RFB 003.008\n" {
		return fmt.Errorf("rfb: client speaks %q, not RFB 3.8", clientVersion[:])
	}
	// One security type, None (1); the client picks it; the result is OK.
	if _, err := conn.Write([]byte{1, 1}); err != nil {
		return err
	}
	choice, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("rfb: read security type: %w", err)
	}
	if choice != 1 {
		return fmt.Errorf("rfb: client chose security type %d", choice)
	}
	if err := binary.Write(conn, binary.BigEndian, uint32(0)); err != nil {
		return err
	}
	if _, err := r.ReadByte(); err != nil { // ClientInit: shared flag
		return fmt.Errorf("rfb: read ClientInit: %w", err)
	}
	img, _, _ := screen.snapshot()
	init := struct {
		Width, Height uint16
		Format        pixelFormat
		NameLength    uint32
	}{uint16(img.Rect.Dx()), uint16(img.Rect.Dy()), serverFormat, uint32(len(name))}
	if err := binary.Write(conn, binary.BigEndian, init); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, name); err != nil {
		return err
	}

	// The reader parses the viewer's messages; the writer sends updates.
	// They share the pixel format and the outstanding request.
	u := &updater{conn: conn, screen: screen, format: serverFormat, wake: make(chan struct{}, 1), done: make(chan struct{})}
	werr := make(chan error, 1)
	go func() { werr <- u.run() }()
	rerr := u.read(r, onKey)
	close(u.done)
	conn.Close()
	if err := <-werr; err != nil && rerr == nil {
		return err
	}
	if errors.Is(rerr, io.EOF) {
		return nil
	}
	return rerr
}

type updater struct {
	conn   io.Writer
	screen *Screen

	mu          sync.Mutex
	format      pixelFormat
	requested   bool // an update request is outstanding
	incremental bool // ... and it only wants changes
	wake        chan struct{}
	done        chan struct{}
}

func (u *updater) read(r *bufio.Reader, onKey func(uint32)) error {
	for {
		t, err := r.ReadByte()
		if err != nil {
			return err
		}
		switch t {
		case msgSetPixelFormat:
			var m struct {
				_      [3]byte
				Format pixelFormat
			}
			if err := binary.Read(r, binary.BigEndian, &m); err != nil {
				return err
			}
			f := m.Format
			if f.TrueColour == 0 || (f.BPP != 8 && f.BPP != 16 && f.BPP != 32) {
				return fmt.Errorf("rfb: unsupported pixel format %+v", f)
			}
			u.mu.Lock()
			u.format = f
			u.mu.Unlock()
		case msgSetEncodings:
			var m struct {
				_ byte
				N uint16
			}
			if err := binary.Read(r, binary.BigEndian, &m); err != nil {
				return err
			}
			if _, err := r.Discard(4 * int(m.N)); err != nil {
				return err
			}
		case msgFramebufferUpdateRequest:
			var m struct {
				Incremental uint8
				X, Y, W, H  uint16
			}
			if err := binary.Read(r, binary.BigEndian, &m); err != nil {
				return err
			}
			u.mu.Lock()
			if !u.requested || m.Incremental == 0 {
				u.incremental = m.Incremental != 0
			}
			u.requested = true
			u.mu.Unlock()
			select {
			case u.wake <- struct{}{}:
			default:
			}
		case msgKeyEvent:
			var m struct {
				Down uint8
				_    [2]byte
				Key  uint32
			}
			if err := binary.Read(r, binary.BigEndian, &m); err != nil {
				return err
			}
			if m.Down != 0 && onKey != nil {
				onKey(m.Key)
			}
		case msgPointerEvent:
			if _, err := r.Discard(5); err != nil {
				return err
			}
		case msgClientCutText:
			var m struct {
				_ [3]byte
				N uint32
			}
			if err := binary.Read(r, binary.BigEndian, &m); err != nil {
				return err
			}
			if _, err := r.Discard(int(m.N)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("rfb: unsupported client message type %d", t)
		}
	}
}

// run sends an update for each request: at once for a full one, when the
// screen has changed since the last update for an incremental one.
func (u *updater) run() error {
	var sent uint64
	first := true
	for {
		version, changed := u.screen.current()
		u.mu.Lock()
		due := u.requested && (!u.incremental || first || version != sent)
		format := u.format
		if due {
			u.requested = false
		}
		u.mu.Unlock()
		if due {
			// The copy is taken after the request was seen, so the viewer
			// gets the screen as it was when it asked, or newer.
			img, version, _ := u.screen.snapshot()
			if err := writeUpdate(u.conn, img, format); err != nil {
				return err
			}
			sent, first = version, false
			continue
		}
		select {
		case <-u.done:
			return nil
		case <-u.wake:
		case <-changed:
		}
	}
}

// writeUpdate sends a FramebufferUpdate of one raw rectangle: the screen.
func writeUpdate(w io.Writer, img *image.RGBA, f pixelFormat) error {
	b := img.Rect
	hdr := struct {
		Type     uint8
		_        uint8
		Rects    uint16
		X, Y     uint16
		W, H     uint16
		Encoding int32
	}{Rects: 1, W: uint16(b.Dx()), H: uint16(b.Dy())}
	bpp := int(f.BPP) / 8
	buf := make([]byte, 0, 16+b.Dx()*b.Dy()*bpp)
	buf, _ = binary.Append(buf, binary.BigEndian, hdr)
	var order binary.AppendByteOrder = binary.LittleEndian
	if f.BigEndian != 0 {
		order = binary.BigEndian
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.RGBAAt(x, y)
			v := uint32(c.R)*uint32(f.RedMax)/255<<f.RedShift |
				uint32(c.G)*uint32(f.GreenMax)/255<<f.GreenShift |
				uint32(c.B)*uint32(f.BlueMax)/255<<f.BlueShift
			switch bpp {
			case 1:
				buf = append(buf, byte(v))
			case 2:
				buf = order.AppendUint16(buf, uint16(v))
			default:
				buf = order.AppendUint32(buf, v)
			}
		}
	}
	_, err := w.Write(buf)
	return err
}
