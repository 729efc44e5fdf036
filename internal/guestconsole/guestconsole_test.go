package guestconsole

import (
	"bufio"
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net"
	"testing"
	"time"
)

func TestRFBHandshakeAndFrame(t *testing.T) {
	blue := color.RGBA{R: 0x12, G: 0x60, B: 0xc4, A: 255}
	screen := NewScreen(64, 48, blue)
	keys := make(chan uint32, 4)
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeRFB(server, "vm-one", screen, func(k uint32) { keys <- k }) }()
	client.SetDeadline(time.Now().Add(10 * time.Second))

	v, err := Dial(client)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "vm-one" || v.Width != 64 || v.Height != 48 {
		t.Fatalf("ServerInit: %q %dx%d, want vm-one 64x48", v.Name, v.Width, v.Height)
	}
	got, err := v.Frame(10, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got != blue {
		t.Errorf("pixel (10,10) = %v, want %v", got, blue)
	}
	red := color.RGBA{R: 0xff, A: 255}
	screen.Update(func(img *image.RGBA) { Fill(img, image.Rect(0, 0, 20, 20), red) })
	if got, err = v.Frame(10, 10); err != nil || got != red {
		t.Errorf("after the screen changed: pixel (10,10) = %v, %v; want %v", got, err, red)
	}
	if err := v.Key('a'); err != nil {
		t.Fatal(err)
	}
	if k := <-keys; k != 'a' {
		t.Errorf("key %#x, want 'a'", k)
	}
	client.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeRFB after the viewer left: %v", err)
	}
}

func TestSerialLoginPromptEchoes(t *testing.T) {
	server, client := net.Pipe()
	go func() { _ = ServeSerial(server, "vm-one") }()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(client)
	expect := func(want string) {
		t.Helper()
		if _, err := ReadUntil(r, want); err != nil {
			t.Fatal(err)
		}
	}
	expect("vm-one login: ")
	go client.Write([]byte("dev\r"))
	expect("dev\r\nPassword: ")
	go client.Write([]byte("secret\r"))
	expect("Welcome to vm-one, dev.\r\ndev@vm-one:~$ ")
	go client.Write([]byte("echo hi\r"))
	expect("echo hi\r\necho hi\r\ndev@vm-one:~$ ")
}

func TestDrawTextInks(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	ink := color.RGBA{G: 255, A: 255}
	DrawText(img, 0, 0, 1, "H", ink)
	if img.RGBAAt(0, 0) != ink || img.RGBAAt(2, 0) == ink || img.RGBAAt(2, 3) != ink {
		t.Errorf("H is not drawn as the font says")
	}
	if TextWidth("abc", 2) != 36 {
		t.Errorf("TextWidth(abc, 2) = %d", TextWidth("abc", 2))
	}
}

func TestScreenPNG(t *testing.T) {
	green := color.RGBA{R: 0x2e, G: 0x8b, B: 0x57, A: 255}
	screen := NewScreen(64, 48, green)
	screen.Update(func(img *image.RGBA) { DrawText(img, 2, 2, 1, "A", color.RGBA{R: 255, G: 255, B: 255, A: 255}) })
	b, err := screen.PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, 64, 48) {
		t.Errorf("bounds %v, want 64x48", got)
	}
	if got := color.RGBAModel.Convert(img.At(40, 40)); got != green {
		t.Errorf("background %v, want %v", got, green)
	}
	// The A's top bar (" ### ") is ink at (3,2).
	if got := color.RGBAModel.Convert(img.At(3, 2)); got != (color.RGBA{R: 255, G: 255, B: 255, A: 255}) {
		t.Errorf("text pixel %v, want white", got)
	}
}
