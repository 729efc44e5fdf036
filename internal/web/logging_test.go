package web_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"paddock/internal/web"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsCarryRequestIDAndNoSecrets: every line logged while serving a
// request carries its request id; tokens and SSH keys never appear.
func TestLogsCarryRequestIDAndNoSecrets(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	var buf lockedBuffer
	log := slog.New(web.LogHandler(slog.NewJSONHandler(&buf, nil)))
	srv := httptest.NewServer(web.New(web.Config{DevSignIn: true}, e.st, nil, nil, log).Handler())
	defer srv.Close()
	e.srv = srv
	tok := e.token("developer")
	good := `{"template":"ubuntu-2404","size":"small","name":"logged","sshPublicKey":"` + sshKey + `","leaseDays":2}`
	if resp, b := e.apiDo(tok, "POST", "/api/v1/requests", good, nil); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.apiDo(tok, "GET", "/api/v1/requests/999999", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing request: %d", resp.StatusCode)
	}
	out := buf.String()
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if rec["msg"] == "http" {
			lines++
			if id, _ := rec["request_id"].(string); id == "" {
				t.Errorf("http line without request_id: %s", line)
			}
		}
	}
	if lines < 2 {
		t.Errorf("%d http lines logged", lines)
	}
	for _, secret := range []string{tok, "AAAAC3NzaC1lZDI1NTE5"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret: %s", secret[:8])
		}
	}
}
