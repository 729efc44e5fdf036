package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"paddock/internal/testdb"
)

// TestHostileConnections checks the http.Server settings of serve.go against
// the real binary: headers over MaxHeaderBytes (64 KiB) get 431, and a
// client that sends its headers too slowly is cut off after
// ReadHeaderTimeout (5 s) instead of holding a connection.
func TestHostileConnections(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	p := startPortal(t, dbURL)
	addr := strings.TrimPrefix(p.base, "http://")

	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", p.base+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 80<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("80 KiB of headers: %d, want 431", resp.StatusCode)
		}
		// Headers under the limit still work.
		req.Header.Set("X-Padding", strings.Repeat("a", 32<<10))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("32 KiB of headers: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("slow headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		// A header line every second: never finishes within the timeout.
		go func() {
			if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
				return
			}
			for range 20 {
				time.Sleep(time.Second)
				if _, err := c.Write([]byte("X-Slow: 1\r\n")); err != nil {
					return
				}
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		took := time.Since(start)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server still holds the connection after %s", took)
		}
		// Cut off: either closed outright or answered 408, but never served.
		if strings.Contains(line, " 200 ") {
			t.Fatalf("a request with never-ending headers was served: %q", line)
		}
		if took < 4*time.Second || took > 10*time.Second {
			t.Errorf("cut off after %s; ReadHeaderTimeout is 5s", took)
		}
		t.Logf("cut off after %s (%q, %v)", took.Round(100*time.Millisecond), strings.TrimSpace(line), err)
	})
}
