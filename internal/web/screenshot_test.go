package web_test

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"paddock/internal/web"
)

// screenshot is one answer of the screenshot route.
type screenshot struct {
	status int
	ctype  string
	cache  string
	body   []byte
}

// screenshotAs fetches path as login.
func (e *consoleEnv) screenshotAs(login, path string) screenshot {
	e.t.Helper()
	resp, err := e.browser(login).Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return screenshot{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), b}
}

func (e *consoleEnv) screenshotPath() string {
	return "/requests/" + strconv.FormatInt(e.req.ID, 10) + "/screenshot"
}

// TestScreenshotOfTheSimulatedCluster: the VM's team and the platform team
// get a PNG of the simulated screen (the console's), never cached; a
// manager is refused, another team's developer finds nothing; a VM that
// stopped answers a placeholder that says so.
func TestScreenshotOfTheSimulatedCluster(t *testing.T) {
	e := setupConsole(t, web.Config{})
	for _, login := range []string{"developer", "platform"} {
		s := e.screenshotAs(login, e.screenshotPath())
		if s.status != http.StatusOK || s.ctype != "image/png" || s.cache != "no-store" {
			t.Fatalf("%s: %d %q %q, want 200 image/png no-store", login, s.status, s.ctype, s.cache)
		}
		img, err := png.Decode(bytes.NewReader(s.body))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 400 {
			t.Errorf("%s: screenshot %v, want the simulated 640x400 screen", login, b)
		}
		if r, g, b, _ := img.At(2, 2).RGBA(); r>>8 != 0x1b || g>>8 != 0x26 || b>>8 != 0x3b {
			t.Errorf("%s: pixel (2,2) %x%x%x, want the simulated screen's 1b263b", login, r>>8, g>>8, b>>8)
		}
	}
	for login, want := range map[string]int{"manager": http.StatusForbidden, "outsider": http.StatusNotFound} {
		if s := e.screenshotAs(login, e.screenshotPath()); s.status != want || s.ctype == "image/png" {
			t.Errorf("%s: %d %q, want %d without a picture", login, s.status, s.ctype, want)
		}
	}

	// The instance goes (the VM stopped, Paddock has not seen it yet).
	if err := e.cluster.Virt.KubevirtV1().VirtualMachineInstances(e.req.Namespace).Delete(context.Background(), e.req.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s := e.screenshotAs("developer", e.screenshotPath())
	if s.status != http.StatusOK || s.ctype != "image/svg+xml" || s.cache != "no-store" || !strings.Contains(string(s.body), "The VM is not running") {
		t.Errorf("stopped VM: %d %q %q %s, want the not-running placeholder", s.status, s.ctype, s.cache, s.body)
	}
}

// TestScreenshotThumbnailOnTheVMPage: the VM's page shows the thumbnail,
// linking to the console, to those who may open the console; the pool's
// page shows one per running member, each of its own member.
func TestScreenshotThumbnailOnTheVMPage(t *testing.T) {
	e := setupConsole(t, web.Config{})
	id := strconv.FormatInt(e.req.ID, 10)
	for login, want := range map[string]bool{"developer": true, "platform": true} {
		_, b := e.getAs(e.browser(login), "/requests/"+id, nil)
		shown := strings.Contains(b, `data-testid="vm-thumbnail"`) &&
			strings.Contains(b, `data-screen-src="/requests/`+id+`/screenshot"`) &&
			strings.Contains(b, `href="/requests/`+id+`/console/vnc" data-testid="vm-thumbnail-link"`) &&
			strings.Contains(b, `/thumbnail.js"`)
		if shown != want {
			t.Errorf("%s: thumbnail shown %v, want %v", login, shown, want)
		}
	}
	// A manager reads the page but may not see the screen.
	_, b := e.getAs(e.browser("manager"), "/requests/"+id, nil)
	if strings.Contains(b, `data-testid="vm-thumbnail"`) {
		t.Error("manager: the thumbnail is shown")
	}

	pool := e.poolRunning("thumb-pool", 2)
	pid := strconv.FormatInt(pool.ID, 10)
	_, b = e.getAs(e.browser("developer"), "/requests/"+pid, nil)
	for _, m := range []string{"thumb-pool-0", "thumb-pool-1"} {
		if !strings.Contains(b, `data-screen-src="/requests/`+pid+`/screenshot?vm=`+m+`"`) {
			t.Errorf("pool page: no thumbnail of %s", m)
		}
	}
	e.runInstance(pool.Namespace, "thumb-pool-1")
	if s := e.screenshotAs("developer", "/requests/"+pid+"/screenshot?vm=thumb-pool-1"); s.status != http.StatusOK || s.ctype != "image/png" {
		t.Errorf("pool member: %d %q, want a PNG", s.status, s.ctype)
	}
	if s := e.screenshotAs("developer", "/requests/"+pid+"/screenshot?vm=someone-else"); s.status != http.StatusNotFound {
		t.Errorf("a VM not in the pool: %d, want 404", s.status)
	}
}
