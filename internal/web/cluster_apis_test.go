package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"paddock/internal/provision"
	"paddock/internal/web"
)

// TestRequestRefusedForAPIsTheClusterLacks gives the server what a watcher
// reports on a cluster with KubeVirt alone (no CDI, no VirtualMachinePool
// API; discovering that on a real API server is tested in
// internal/provision): the form and the JSON API refuse a template that
// imports its disk and a pool, each at its field with the same sentence
// naming the missing component (the form as soon as they are picked), store
// nothing, and accept a containerDisk VM.
func TestRequestRefusedForAPIsTheClusterLacks(t *testing.T) {
	kubevirtAlone := provision.APIs{Known: true}
	e := setup(t, web.Config{DevSignIn: true, ClusterLacks: kubevirtAlone.Lacks})
	const (
		noCDI   = "This cluster has no CDI (Containerized Data Importer), which template fedora needs to import its disk"
		noPools = "This cluster has no VirtualMachinePool API"
	)

	c := e.browser("developer")
	// Said as soon as the template or the pool size is picked.
	if resp, b := e.get(c, "/requests/new?template=fedora"); resp.StatusCode != http.StatusOK || !strings.Contains(b, noCDI) {
		t.Errorf("form shown for fedora: %d, sentence shown %v", resp.StatusCode, strings.Contains(b, noCDI))
	}
	if resp, b := e.get(c, "/requests/new?template=cirros&replicas=2"); resp.StatusCode != http.StatusOK || !strings.Contains(b, noPools) {
		t.Errorf("form shown for a pool: %d, sentence shown %v", resp.StatusCode, strings.Contains(b, noPools))
	}
	if _, b := e.get(c, "/requests/new?template=cirros"); strings.Contains(b, "This cluster has no") {
		t.Error("form shown for a single containerDisk VM names a missing component")
	}
	f := validForm()
	f.Set("template", "fedora")
	resp, b := e.post(c, "/requests", f)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, noCDI) {
		t.Errorf("form, fedora: %d, sentence shown %v", resp.StatusCode, strings.Contains(b, noCDI))
	}
	f = validForm()
	f.Set("template", "cirros")
	f.Set("size", "nano")
	f.Set("replicas", "3")
	resp, b = e.post(c, "/requests", f)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(b, noPools) {
		t.Errorf("form, pool: %d, sentence shown %v", resp.StatusCode, strings.Contains(b, noPools))
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Fatalf("%d requests stored after refusals", n)
	}

	tok := e.token("developer")
	api := func(payload string) (int, map[string]string) {
		t.Helper()
		resp, b := e.apiDo(tok, http.MethodPost, "/api/v1/requests", payload, nil)
		var out struct {
			Fields []struct{ Field, Message string }
		}
		_ = json.Unmarshal([]byte(b), &out)
		fields := map[string]string{}
		for _, f := range out.Fields {
			fields[f.Field] = f.Message
		}
		return resp.StatusCode, fields
	}
	code, fields := api(`{"template":"fedora","size":"small","name":"api-1","sshPublicKey":"` + sshKey + `","leaseDays":3}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(fields["template"], noCDI) {
		t.Errorf("API, fedora: %d %v", code, fields)
	}
	code, fields = api(`{"template":"cirros","size":"nano","name":"api-2","sshPublicKey":"` + sshKey + `","leaseDays":3,"replicas":2}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(fields["replicas"], noPools) {
		t.Errorf("API, pool: %d %v", code, fields)
	}
	if n := e.count(`SELECT count(*) FROM requests`); n != 0 {
		t.Fatalf("%d requests stored after refusals", n)
	}
	code, fields = api(`{"template":"cirros","size":"nano","name":"api-3","sshPublicKey":"` + sshKey + `","leaseDays":3}`)
	if code != http.StatusCreated {
		t.Errorf("API, containerDisk VM: %d %v", code, fields)
	}
}
