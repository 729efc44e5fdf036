package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"paddock/internal/testdb"
)

// TestGracefulShutdown: on SIGTERM the portal stops accepting, ends open
// live-update streams instead of waiting for browsers to leave, and exits
// cleanly well within its shutdown timeout.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	p := startPortal(t, dbURL)
	tok := token(t, dbURL, "developer")
	r := submit(t, p.base, tok, "graceful")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(p.base+"/dev/signin", url.Values{"login": {"developer"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stream, err := c.Get(fmt.Sprintf("%s/requests/%d/stream", p.base, r.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if ct := stream.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream content type %q", ct)
	}
	ended := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
		}
		close(ended)
	}()

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("the portal did not exit within 15 s of SIGTERM:\n%s", p.log())
	}
	select {
	case <-ended:
	case <-time.After(2 * time.Second):
		t.Error("the event stream was not closed")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !strings.Contains(p.log(), "shutting down") {
		t.Error("no shutdown line in the log")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}
