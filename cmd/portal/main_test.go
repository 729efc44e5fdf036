package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"paddock/internal/kubetest"
	"paddock/internal/store"
	"paddock/internal/testdb"
)

var portalBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portal-test")
	if err != nil {
		panic(err)
	}
	portalBin = filepath.Join(dir, "portal")
	if out, err := exec.Command("go", "build", "-o", portalBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build portal: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	for _, env := range []*kubetest.Env{kubeEnv, ctrlEnv} {
		if env != nil {
			_ = env.Stop()
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `portal dev` process.
type proc struct {
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

var runningLine = regexp.MustCompile(`open http://(localhost:\d+)`)

// startPortal runs `portal dev` on a free port against dbURL with the
// simulated cluster, and waits until it serves.
func startPortal(t *testing.T, dbURL string, env ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(portalBin, "dev", "--addr", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), append([]string{
		"DATABASE_URL=" + dbURL, "PADDOCK_SIM_DELAY=100ms", "PADDOCK_LOG_FORMAT=text", "PADDOCK_JOB_TIMEOUT=3s",
	}, env...)...)
	p.cmd.Stderr = p
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("portal log:\n%s", p.log())
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := runningLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.done:
		t.Fatalf("portal exited early:\n%s", p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("portal did not start:\n%s", p.log())
	}
	return p
}

func token(t *testing.T, dbURL, login string) string {
	t.Helper()
	cmd := exec.Command(portalBin, "token", "create", "--user", login)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	if !strings.HasPrefix(tok, "pdk_") {
		t.Fatalf("token %q", tok)
	}
	return tok
}

type apiReq struct {
	ID    int64  `json:"id"`
	State string `json:"state"`
	VM    *struct {
		Namespace, Name, Status, IP string
	} `json:"vm"`
	Events []struct{ Kind, To string }
}

func call(t *testing.T, base, tok, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq5x1mQ4Vj0d3lSx8T5wO0x0e8fYl0m7q2i5b8l9cXo dev@example"

func submit(t *testing.T, base, tok, name string) apiReq {
	t.Helper()
	body := fmt.Sprintf(`{"template":"ubuntu-2404","size":"small","name":%q,"sshPublicKey":%q,"leaseDays":3,"justification":"test"}`, name, sshKey)
	status, b := call(t, base, tok, "POST", "/api/v1/requests", body)
	if status != 201 {
		t.Fatalf("submit: %d %s", status, b)
	}
	var r apiReq
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitState polls the API until the request is in state (and, for running,
// has an IP), failing after limit.
func waitState(t *testing.T, base, tok string, id int64, state string, limit time.Duration) apiReq {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last apiReq
	for time.Now().Before(deadline) {
		status, b := call(t, base, tok, "GET", fmt.Sprintf("/api/v1/requests/%d", id), "")
		if status == 200 {
			last = apiReq{}
			_ = json.Unmarshal(b, &last)
			if last.State == state && (state != "running" || last.VM != nil && last.VM.IP != "") {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("request %d is %q, not %q, after %s", id, last.State, state, limit)
	return last
}

// TestAPIJourneyInDevMode: token → POST → GET shows running with an IP
// within 30 s; the manifest endpoint returns a valid VirtualMachine.
func TestAPIJourneyInDevMode(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	p := startPortal(t, dbURL)
	tok := token(t, dbURL, "developer")
	r := submit(t, p.base, tok, "journey-1")
	got := waitState(t, p.base, tok, r.ID, "running", 30*time.Second)
	if got.VM.Namespace != "payments" || got.VM.Name != "journey-1" || got.VM.Status != "Running" {
		t.Errorf("vm = %+v", got.VM)
	}
	status, manifest := call(t, p.base, tok, "GET", fmt.Sprintf("/api/v1/requests/%d/manifest", r.ID), "")
	if status != 200 {
		t.Fatalf("manifest: %d", status)
	}
	var vm virtv1.VirtualMachine
	if err := yaml.UnmarshalStrict(manifest, &vm); err != nil {
		t.Fatalf("manifest is not a VirtualMachine: %v\n%s", err, manifest)
	}
	if vm.Kind != "VirtualMachine" || vm.APIVersion != "kubevirt.io/v1" || vm.Name != "journey-1" ||
		vm.Spec.RunStrategy == nil || *vm.Spec.RunStrategy != virtv1.RunStrategyAlways ||
		vm.Labels["paddock.dev/request-id"] != fmt.Sprint(r.ID) {
		t.Errorf("manifest: %+v", vm.ObjectMeta)
	}
	// Stop, start and delete through the API.
	for _, step := range []struct{ action, state string }{{"stop", "stopped"}, {"start", "running"}, {"delete", "deleted"}} {
		if status, b := call(t, p.base, tok, "POST", fmt.Sprintf("/api/v1/requests/%d/actions/%s", r.ID, step.action), ""); status != 202 {
			t.Fatalf("%s: %d %s", step.action, status, b)
		}
		waitState(t, p.base, tok, r.ID, step.state, 30*time.Second)
	}
}

func TestServeRefusesDevSignIn(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	env := map[string]string{"PADDOCK_DEV_SIGNIN": "true", "DATABASE_URL": "postgres://x@127.0.0.1:1/x"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "only available in `portal dev`") {
		t.Fatalf("serve with dev sign-in: %v", err)
	}
}

func TestSeedIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := store.New(pool)
	ctx := context.Background()
	counts := func() string {
		var s string
		err := pool.QueryRow(ctx, `SELECT format('%s/%s/%s/%s', (SELECT count(*) FROM teams), (SELECT count(*) FROM users),
			(SELECT count(*) FROM templates), (SELECT count(*) FROM template_versions))`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	log := slog.New(slog.DiscardHandler)
	if err := seed(ctx, st, log); err != nil {
		t.Fatal(err)
	}
	first := counts()
	if err := seed(ctx, st, log); err != nil {
		t.Fatal(err)
	}
	if second := counts(); second != first || first == "0/0/0/0" {
		t.Errorf("seeding twice: %s then %s", first, second)
	}
}
