package web_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/web"
)

// vmPageParts cuts a VM page into its toolbar (primary actions), its
// "More actions" menu and its danger area; a part the page lacks is "".
func vmPageParts(b string) (toolbar, menu, danger string) {
	cut := func(from, to string) string {
		i := strings.Index(b, from)
		if i < 0 {
			return ""
		}
		j := strings.Index(b[i:], to)
		if j < 0 {
			return b[i:]
		}
		return b[i : i+j]
	}
	toolbar = cut(`data-testid="actions"`, `<details`)
	if !strings.Contains(b, `<details class="menu"`) {
		toolbar = cut(`data-testid="actions"`, `</div>`)
	}
	menu = cut(`<details class="menu"`, `</details>`)
	danger = cut(`data-testid="danger-zone"`, `</section>`)
	return
}

// TestVMPageActionsMenu renders VM pages from a real database: start, stop,
// restart and the consoles are buttons at the top; extending the lease and
// pet or cattle are in a "More actions" disclosure, closed, that needs no
// script; rebuild and delete are in the danger area only. A lease about to
// end puts Extend on the toolbar; a refusal of a menu item opens the menu;
// a request still waiting, or a failed VM, is offered neither extend nor pet.
func TestVMPageActionsMenu(t *testing.T) {
	e := setup(t, web.Config{DevSignIn: true})
	ctx := context.Background()
	r := e.cattleRunning("menu")
	owner := e.browser("developer")
	page := "/requests/" + strconv.FormatInt(r.ID, 10)

	_, b := e.grGet(owner, page)
	toolbar, menu, danger := vmPageParts(b)
	for _, want := range []string{`data-testid="action-stop"`, `data-testid="action-restart"`, `data-testid="open-console"`, `data-testid="open-serial"`} {
		if !strings.Contains(toolbar, want) {
			t.Errorf("the toolbar lacks %s", want)
		}
	}
	for _, want := range []string{`data-testid="extend"`, `data-testid="pet-toggle"`, `>Mark as pet<`} {
		if !strings.Contains(menu, want) {
			t.Errorf("the menu lacks %s", want)
		}
	}
	if !strings.HasPrefix(menu, `<details class="menu" id="more-actions" data-testid="more-actions">`) {
		t.Errorf("the menu is not a closed disclosure: %.80q", menu)
	}
	if !strings.Contains(menu, `<summary class="button secondary" data-testid="more-actions-toggle">More actions</summary>`) {
		t.Error("the menu has no More actions button")
	}
	for _, d := range []string{`data-testid="rebuild"`, `data-testid="action-delete"`} {
		if !strings.Contains(danger, d) || strings.Contains(toolbar, d) || strings.Contains(menu, d) {
			t.Errorf("%s is not in the danger area alone", d)
		}
	}
	if strings.Count(b, `data-testid="extend"`) != 1 || strings.Count(b, `data-testid="pet-toggle"`) != 1 {
		t.Error("extend or the pet toggle is offered twice")
	}
	if strings.Contains(b, "<script>") || strings.Contains(b, " onclick=") || strings.Contains(b, " ontoggle=") {
		t.Error("the page has inline script")
	}
	// The live fragment has the same actions area.
	if _, live := e.get(owner, page+"/live"); !strings.Contains(live, `<details class="menu" id="more-actions"`) {
		t.Error("the live fragment lacks the menu")
	}

	// A lease about to end: Extend is a primary button on the toolbar.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE requests SET expires_at = now() + interval '3 hours' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	_, b = e.grGet(owner, page)
	toolbar, menu, _ = vmPageParts(b)
	if !strings.Contains(toolbar, `data-testid="extend"`) || strings.Contains(menu, `data-testid="extend"`) {
		t.Error("a lease ending within hours does not put Extend on the toolbar")
	}
	if !strings.Contains(b, `data-testid="lease-banner"`) {
		t.Error("a lease ending within hours has no banner")
	}
	if _, err := e.st.Pool().Exec(ctx, `UPDATE requests SET expires_at = now() + interval '6 days' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}

	// A refused menu item comes back with the menu open and the reason
	// below the toolbar.
	_, b = e.postBack(owner, page+"/pet", url.Values{"pet": {"maybe"}})
	_, menu, _ = vmPageParts(b)
	if !strings.HasPrefix(menu, `<details class="menu" id="more-actions" data-testid="more-actions" open>`) {
		t.Errorf("after a refused pet toggle the menu is closed: %.80q", menu)
	}
	if i, j := strings.Index(b, `data-testid="actions"`), strings.Index(b, `data-testid="flash">Pet must be true or false.`); j < 0 || j < i {
		t.Error("the refusal is not shown below the actions")
	}

	// Someone else who may act on the VM is not offered its owner's pet toggle.
	if _, b := e.grGet(e.browser("platform"), page); strings.Contains(b, `data-testid="pet-toggle"`) {
		t.Error("the platform team is offered the owner's pet toggle")
	}

	// A request waiting for approval: nothing to extend or keep yet.
	pending := e.grSubmit("developer", "centos-stream9", "medium", "waiting")
	if pending.State != store.StatePendingApproval {
		t.Fatalf("centos-stream9 medium is %s, want pending approval", pending.State)
	}
	_, b = e.grGet(owner, "/requests/"+strconv.FormatInt(pending.ID, 10))
	if _, menu, danger := vmPageParts(b); menu != "" || strings.Contains(b, `data-testid="pet-toggle"`) || !strings.Contains(danger, "Withdraw request") {
		t.Error("a pending request is offered a menu or the pet toggle, or cannot be withdrawn")
	}

	// A failed VM: no extend, no start or stop, delete still in the danger area.
	if _, err := e.st.Transition(ctx, r.ID, store.StateFailed, store.ActorCluster, "state", "the image would not boot", store.StateRunning); err != nil {
		t.Fatal(err)
	}
	_, b = e.grGet(owner, page)
	toolbar, _, danger = vmPageParts(b)
	if strings.Contains(b, `data-testid="extend"`) || strings.Contains(toolbar, `data-testid="action-stop"`) || !strings.Contains(danger, `data-testid="action-delete"`) {
		t.Error("a failed VM is offered extend or stop, or not delete")
	}
}
