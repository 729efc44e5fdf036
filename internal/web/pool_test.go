package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/testdb"
	"paddock/internal/web"
)

// poolRunning makes a running pool of n VMs of the developer's, with its
// members as the watcher would have recorded them.
func (e *env) poolRunning(name string, n int) store.Request {
	e.t.Helper()
	ctx := context.Background()
	u := e.users["developer"]
	r, err := e.st.SubmitRequest(ctx, store.NewRequest{TeamID: *u.TeamID, Requester: u, Template: "cirros",
		Size: "nano", Name: name, SSHPublicKey: sshKey, LeaseDays: 3, Replicas: n})
	if err != nil {
		e.t.Fatal(err)
	}
	err = testdb.Provision(ctx, e.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "uid-" + name, Manifest: "kind: VirtualMachinePool\n"}, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	o := store.Observation{Pool: true, State: store.StateRunning, Status: strconv.Itoa(n) + "/" + strconv.Itoa(n) + " ready",
		Namespace: r.Namespace, Name: r.Name, UID: "uid-" + name}
	for i := range n {
		o.Members = append(o.Members, store.PoolMember{Name: name + "-" + strconv.Itoa(i), Status: "Running",
			IP: "10.0.0." + strconv.Itoa(i+1), Ready: true})
	}
	if _, err := e.st.Observe(ctx, r.ID, o); err != nil {
		e.t.Fatal(err)
	}
	return e.cattleState(r.ID)
}

func TestRequestFormAsksForAPool(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("developer")
	resp, b := e.get(c, "/requests/new?template=cirros&replicas=4")
	if resp.StatusCode != 200 || !strings.Contains(b, `id="replicas" name="replicas"`) || !strings.Contains(b, `value="4"`) {
		t.Fatalf("form lacks the replicas field: %d", resp.StatusCode)
	}
	f := validForm()
	f.Set("replicas", "lots")
	resp, b = e.post(c, "/requests", f)
	if resp.StatusCode != 422 || !strings.Contains(b, "must be a whole number of VMs, from 1 to 100") {
		t.Errorf("replicas=lots: %d", resp.StatusCode)
	}
	f.Set("replicas", "2")
	resp, _ = e.post(c, "/requests", f)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pool of 2: %d", resp.StatusCode)
	}
	rs, err := e.st.Requests(context.Background(), store.RequestFilter{})
	if err != nil || len(rs) != 1 || !rs[0].Pool || rs[0].Replicas != 2 {
		t.Fatalf("stored: %+v %v", rs, err)
	}
}

func TestPoolPageListsMembersAndScales(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	e.grQuota("payments", store.Quota{VMs: grInt(4)})
	r := e.poolRunning("workers", 2)
	path := "/requests/" + strconv.FormatInt(r.ID, 10)
	owner := e.browser("developer")

	_, b := e.get(owner, path)
	for _, want := range []string{`data-testid="members"`, ">workers-0<", "10.0.0.2", `data-testid="scale-form"`,
		"The quota leaves room for at most 4 VMs in this pool.", "growing beyond 3 VMs needs approval",
		// The input carries the limit the server enforces.
		`name="replicas" min="1" max="4"`} {
		if !strings.Contains(b, want) {
			t.Errorf("owner's page lacks %s", want)
		}
	}
	// The live fragment carries the members too (it is what updates live).
	if _, live := e.get(owner, path+"/live"); !strings.Contains(live, `data-testid="members"`) {
		t.Error("live fragment lacks the members")
	}
	// Managers see the pool but may not scale it; outsiders do not see it.
	if _, b := e.get(e.browser("manager"), path); strings.Contains(b, `data-testid="scale-form"`) {
		t.Error("manager is offered the scale form")
	}
	for who, want := range map[string]int{"manager": 403, "outsider": 404} {
		if resp, _ := e.post(e.browser(who), path+"/scale", url.Values{"replicas": {"3"}}); resp.StatusCode != want {
			t.Errorf("%s scaling: %d, want %d", who, resp.StatusCode, want)
		}
	}
	// Over quota: refused, naming the limit.
	resp, b := e.postBack(owner, path+"/scale", url.Values{"replicas": {"5"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(b, `data-testid="scale-error">Replicas exceeds the quota of team payments: VMs 5 of 4`) {
		t.Errorf("over quota: %d, want 303 back to the page with the reason at the scale input: %s", resp.StatusCode, b)
	}
	resp, _ = e.post(owner, path+"/scale", url.Values{"replicas": {"3"}})
	if resp.StatusCode != http.StatusSeeOther || e.cattleState(r.ID).Replicas != 3 {
		t.Fatalf("scale to 3: %d", resp.StatusCode)
	}
	// Beyond policy: the page says it waits for approval.
	resp, _ = e.post(e.browser("platform"), path+"/scale", url.Values{"replicas": {"4"}})
	if resp.StatusCode != http.StatusSeeOther || e.cattleState(r.ID).Replicas != 3 {
		t.Fatalf("platform scaling beyond policy: %d", resp.StatusCode)
	}
	if _, b := e.get(owner, path); !strings.Contains(b, "Growing the pool to 4 VMs is waiting for approval") {
		t.Error("page does not say the scale-up waits for approval")
	}
	if _, b := e.get(e.browser("manager"), "/approvals"); !strings.Contains(b, "Grow pool from 3 to 4 VMs") {
		t.Error("approval queue lacks the scale-up")
	}
}

func TestAPIPoolSubmitAndScale(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	tok := e.token("developer")
	resp, b := e.apiDo(tok, "POST", "/api/v1/requests",
		`{"template":"cirros","size":"nano","name":"batch","sshPublicKey":"`+sshKey+`","leaseDays":3,"replicas":2}`, nil)
	if resp.StatusCode != 201 || !strings.Contains(b, `"pool": true`) || !strings.Contains(b, `"replicas": 2`) {
		t.Fatalf("submit a pool: %d %s", resp.StatusCode, b)
	}
	r := e.poolRunning("workers", 2)
	path := "/api/v1/requests/" + strconv.FormatInt(r.ID, 10) + "/scale"
	resp, b = e.apiDo(tok, "POST", path, `{}`, nil)
	if resp.StatusCode != 422 || !strings.Contains(b, `"field": "replicas"`) {
		t.Errorf("no replicas: %d %s", resp.StatusCode, b)
	}
	resp, b = e.apiDo(tok, "POST", path, `{"replicas":1}`, nil)
	var out struct {
		From, To int
		Pending  bool
		Request  struct {
			Replicas int `json:"replicas"`
			Members  []struct {
				Name, IP string
			} `json:"members"`
		}
	}
	if err := json.Unmarshal([]byte(b), &out); err != nil || resp.StatusCode != 202 || out.From != 2 || out.To != 1 || out.Pending || out.Request.Replicas != 1 {
		t.Fatalf("scale to 1: %d %s", resp.StatusCode, b)
	}
	if len(out.Request.Members) != 2 || out.Request.Members[0].IP == "" {
		t.Errorf("members in the answer: %+v", out.Request.Members)
	}
	resp, b = e.apiDo(tok, "POST", path, `{"replicas":9}`, nil)
	if err := json.Unmarshal([]byte(b), &out); err != nil || resp.StatusCode != 202 || !out.Pending || out.To != 1 {
		t.Errorf("scale beyond policy: %d %s", resp.StatusCode, b)
	}
	// A single VM is not a pool.
	vm := e.cattleRunning("solo")
	resp, _ = e.apiDo(tok, "POST", "/api/v1/requests/"+strconv.FormatInt(vm.ID, 10)+"/scale", `{"replicas":2}`, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("scale a single VM: %d", resp.StatusCode)
	}
	// A teammate may see the pool but not scale it.
	pay := e.teams["payments"].ID
	mate, err := e.st.EnsureUser(context.Background(), "teammate", "teammate", store.RoleDeveloper, &pay)
	if err != nil {
		t.Fatal(err)
	}
	e.users["teammate"] = mate
	if resp, _ := e.apiDo(e.token("teammate"), "POST", path, `{"replicas":2}`, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("teammate scaling: %d", resp.StatusCode)
	}
}

// TestTemplateFormSetsTheLargestAutoApprovedPool: the platform team sets
// how large a pool policy approves on its own; out of range is named at
// the field, and the edit form shows what is set.
func TestTemplateFormSetsTheLargestAutoApprovedPool(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	c := e.browser("platform")
	f := templateForm()
	f.Set("maxAutoReplicas", "101")
	if resp, b := e.post(c, "/platform/templates", f); resp.StatusCode != 422 || !strings.Contains(b, `data-testid="error-maxAutoReplicas"`) {
		t.Fatalf("101: %d", resp.StatusCode)
	}
	f.Set("maxAutoReplicas", "6")
	if resp, _ := e.post(c, "/platform/templates", f); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	tpl, err := e.st.TemplateByName(context.Background(), "tiny")
	if err != nil || tpl.Spec.MaxAutoReplicas != 6 {
		t.Fatalf("spec: %+v %v", tpl.Spec, err)
	}
	if _, b := e.get(c, "/platform/templates/tiny/edit"); !strings.Contains(b, `name="maxAutoReplicas" min="1" max="100" value="6"`) {
		t.Error("the edit form does not show the largest auto-approved pool")
	}
}
