package guestconsole

import (
	"bytes"
	"fmt"
	"image/png"
)

// PNG encodes what the screen shows now, as KubeVirt's vnc/screenshot
// subresource answers it (image/png of the whole framebuffer).
func (s *Screen) PNG() ([]byte, error) {
	img, _, _ := s.snapshot()
	var buf bytes.Buffer
	// The screens drawn here are flat colour and text: speed matters more
	// than the last few bytes for a thumbnail refreshed every few seconds.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("screenshot: encode png: %w", err)
	}
	return buf.Bytes(), nil
}
