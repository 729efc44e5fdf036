package guestconsole

import (
	"encoding/binary"
	"fmt"
	"image/color"
	"io"
	"strings"
)

// Viewer is the viewer's side of an RFB 3.8 session with no authentication,
// enough to check a console end to end without a browser.
type Viewer struct {
	rw io.ReadWriter
	// Name is the desktop name; Width and Height the screen's size.
	Name          string
	Width, Height int
}

// Dial performs the handshake over rw (version, security None, ClientInit,
// ServerInit) and asks for 32-bit pixels in the server's byte order.
func Dial(rw io.ReadWriter) (*Viewer, error) {
	var version [12]byte
	if _, err := io.ReadFull(rw, version[:]); err != nil {
		return nil, fmt.Errorf("rfb: read server version: %w", err)
	}
	if string(version[:]) != "RFB 003.008\n" {
		return nil, fmt.Errorf("rfb: server speaks %q", version[:])
	}
	if _, err := io.WriteString(rw, "RFB 003.008\n"); err != nil {
		return nil, err
	}
	var n [1]byte
	if _, err := io.ReadFull(rw, n[:]); err != nil {
		return nil, fmt.Errorf("rfb: read security types: %w", err)
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(rw, types); err != nil {
		return nil, err
	}
	if _, err := rw.Write([]byte{1}); err != nil {
		return nil, err
	}
	var result uint32
	if err := binary.Read(rw, binary.BigEndian, &result); err != nil {
		return nil, fmt.Errorf("rfb: read security result: %w", err)
	}
	if result != 0 {
		return nil, fmt.Errorf("rfb: security handshake failed (%d)", result)
	}
	if _, err := rw.Write([]byte{1}); err != nil { // ClientInit, shared
		return nil, err
	}
	var init struct {
		Width, Height uint16
		Format        pixelFormat
		NameLength    uint32
	}
	if err := binary.Read(rw, binary.BigEndian, &init); err != nil {
		return nil, fmt.Errorf("rfb: read ServerInit: %w", err)
	}
	name := make([]byte, init.NameLength)
	if _, err := io.ReadFull(rw, name); err != nil {
		return nil, err
	}
	return &Viewer{rw: rw, Name: string(name), Width: int(init.Width), Height: int(init.Height)}, nil
}

// Frame asks for the whole screen (a full, not incremental, update) and
// returns the colour of the pixel at (x, y), as the server's pixel format
// (32-bit little-endian RGB) encodes it.
func (v *Viewer) Frame(x, y int) (color.RGBA, error) {
	req := struct {
		Type, Incremental uint8
		X, Y, W, H        uint16
	}{Type: msgFramebufferUpdateRequest, W: uint16(v.Width), H: uint16(v.Height)}
	if err := binary.Write(v.rw, binary.BigEndian, req); err != nil {
		return color.RGBA{}, err
	}
	var hdr struct {
		Type     uint8
		_        uint8
		Rects    uint16
		X, Y     uint16
		W, H     uint16
		Encoding int32
	}
	if err := binary.Read(v.rw, binary.BigEndian, &hdr); err != nil {
		return color.RGBA{}, fmt.Errorf("rfb: read FramebufferUpdate: %w", err)
	}
	if hdr.Type != 0 || hdr.Rects != 1 || hdr.Encoding != 0 {
		return color.RGBA{}, fmt.Errorf("rfb: unexpected update %+v", hdr)
	}
	pix := make([]byte, 4*int(hdr.W)*int(hdr.H))
	if _, err := io.ReadFull(v.rw, pix); err != nil {
		return color.RGBA{}, fmt.Errorf("rfb: read pixels: %w", err)
	}
	i := 4 * ((y-int(hdr.Y))*int(hdr.W) + (x - int(hdr.X)))
	if i < 0 || i+4 > len(pix) {
		return color.RGBA{}, fmt.Errorf("rfb: (%d, %d) is outside the update", x, y)
	}
	p := binary.LittleEndian.Uint32(pix[i:])
	return color.RGBA{R: uint8(p >> 16), G: uint8(p >> 8), B: uint8(p), A: 255}, nil
}

// Key sends a key press and release of keysym.
func (v *Viewer) Key(keysym uint32) error {
	for _, down := range []uint8{1, 0} {
		m := struct {
			Type, Down uint8
			_          [2]byte
			Key        uint32
		}{Type: msgKeyEvent, Down: down, Key: keysym}
		if err := binary.Write(v.rw, binary.BigEndian, m); err != nil {
			return err
		}
	}
	return nil
}

// ReadUntil reads a serial console's output from r until it contains want,
// and returns what it read; on an error, what it read so far with the error.
func ReadUntil(r io.Reader, want string) (string, error) {
	var got strings.Builder
	buf := make([]byte, 256)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil && !strings.Contains(got.String(), want) {
			return got.String(), fmt.Errorf("waiting for %q, got %q: %w", want, got.String(), err)
		}
	}
	return got.String(), nil
}
