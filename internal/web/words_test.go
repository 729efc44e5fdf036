package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/web"
	"paddock/templates"
)

// TestOneOfAThingIsSingular renders the pages of a template whose lease
// runs one day at most, and of a VM leased for one day, from a real
// database: each says "1 day", never "1 days", and none writes "(s)".
func TestOneOfAThingIsSingular(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	var day store.TemplateSpec
	for _, s := range specs {
		if s.Name == "cirros" {
			day = s
		}
	}
	day.Name, day.DisplayName, day.MaxLeaseDays = "cirros-day", "CirrOS for a day", 1
	if _, _, err := e.st.PublishTemplate(ctx, day, nil); err != nil {
		t.Fatal(err)
	}
	u := e.users["developer"]
	r, err := e.st.SubmitRequest(ctx, store.NewRequest{TeamID: *u.TeamID, Requester: u, Template: "cirros-day",
		Size: day.Sizes[0].Name, Name: "brief", SSHPublicKey: sshKey, LeaseDays: 1, Justification: "one day"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "state", "", r.State); err != nil {
		t.Fatal(err)
	}
	c := e.browser("developer")
	for _, path := range []string{"/catalog/cirros-day", "/requests/new?template=cirros-day", "/requests/" + strconv.FormatInt(r.ID, 10)} {
		_, b := e.grGet(c, path)
		if !strings.Contains(b, "1 day") {
			t.Errorf("%s does not say 1 day", path)
		}
		for _, wrong := range []string{"1 days", "(s)"} {
			if strings.Contains(b, wrong) {
				i := strings.Index(b, wrong)
				t.Errorf("%s says %q: %s", path, wrong, b[max(0, i-200):i+20])
			}
		}
	}
}
