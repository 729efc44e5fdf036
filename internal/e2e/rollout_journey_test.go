package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"paddock/internal/store"
)

// scene is direct access to the journey app's database, to set the stage
// (VMs that exist, a template version published) without clicking through
// what other journeys already cover.
type scene struct {
	st *store.Store
}

func newScene(t *testing.T, j *journey) *scene {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), j.app.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	jobs, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.SetJobClient(jobs)
	return &scene{st: st}
}

// publish makes the next version of template cirros with image.
func (s *scene) publish(ctx context.Context, image string) error {
	tpl, err := s.st.TemplateByName(ctx, "cirros")
	if err != nil {
		return err
	}
	tpl.Spec.Image.ContainerDisk = image
	_, _, err = s.st.PublishTemplate(ctx, tpl.Spec, nil)
	return err
}

// TestPlatformRollsOutATemplate: the platform engineer rolls four cirros
// VMs forward to a version whose image cannot be pulled; the rollout page
// follows it live (no reload) until it pauses on the first VM with the
// reason; the engineer cancels it, a fixed version is published, and a
// second rollout in batches of two runs live to completion. The owner finds
// the rollout in the VM's timeline.
func TestPlatformRollsOutATemplate(t *testing.T) {
	j := newJourney(t)
	sc := newScene(t, j)
	ctx := context.Background()
	dev, err := sc.st.UserByLogin(ctx, "developer")
	if err != nil || dev.TeamID == nil {
		t.Fatalf("developer: %v", err)
	}
	key := newSSHKey(t)
	var ids []int64
	for i := range 4 {
		r, err := sc.st.SubmitRequest(ctx, store.NewRequest{TeamID: *dev.TeamID, Requester: dev, Template: "cirros", Size: "nano",
			Name: fmt.Sprintf("herd-%d", i), SSHPublicKey: key, LeaseDays: 3, Justification: "rollout journey"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := sc.st.Request(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.State == store.StateRunning {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d is %s, not running", id, r.State)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := sc.publish(ctx, "quay.io/kubevirt/cirros-container-disk-demo:broken"); err != nil {
		t.Fatal(err)
	}

	rolloutPage := regexp.MustCompile(`^/platform/rollouts/\d+$`)
	start := func(ctx context.Context, batch string) error {
		resp, err := j.open(ctx, "/platform/rollouts")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/platform/rollouts$`)); err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("[data-testid=rollout-template]"), "cirros")); err != nil {
			return err
		}
		if resp, err = clickAndLoad(ctx, "[data-testid=rollout-plan]"); err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/platform/rollouts/new\?template=cirros$`)); err != nil {
			return err
		}
		plan, _, err := text(ctx, "[data-testid=rollout-plan-vms] h2")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(plan, "4 VMs to rebuild") {
			return fmt.Errorf("the plan reads %q, want 4 VMs", plan)
		}
		if err := j.checkA11y(ctx, "rollout plan"); err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("[data-testid=rollout-batch]"), batch)); err != nil {
			return err
		}
		// One batch size, the plan's: updating the plan is what sets it.
		if _, err := clickAndLoad(ctx, "[data-testid=plan-update]"); err != nil {
			return err
		}
		if n, err := eval[int](ctx, `document.querySelectorAll('input[name=batchSize]:not([type=hidden])').length`); err != nil || n != 1 {
			return fmt.Errorf("%d batch size inputs on the plan, want 1 (%v)", n, err)
		}
		if resp, err = clickAndLoad(ctx, "[data-testid=rollout-start-button]"); err != nil {
			return err
		}
		if err := expectPage(resp, 200, rolloutPage); err != nil {
			return err
		}
		// A marker a reload would lose: progress must arrive live.
		_, err = eval[bool](ctx, `(() => { window.__marker = 1; return true; })()`)
		return err
	}
	waitRollout := func(ctx context.Context, state string) error {
		err := waitUntil(ctx, "the rollout to read "+state,
			fmt.Sprintf(`(document.querySelector('[data-testid=rollout-state]')?.textContent ?? '').trim() === %s`, js(state)))
		if err != nil {
			dctx, cancel := diagnose(ctx)
			defer cancel()
			sum, _, _ := text(dctx, "[data-testid=rollout-progress]")
			return fmt.Errorf("%w; the page reads %q", err, sum)
		}
		if m, _ := eval[int](ctx, `window.__marker ?? 0`); m != 1 {
			return fmt.Errorf("the rollout page was reloaded; progress should arrive live")
		}
		return nil
	}

	j.step("platform-starts-rollout", func(ctx context.Context) error {
		if err := j.signIn(ctx, "platform", ""); err != nil {
			return err
		}
		return start(ctx, "2")
	})

	j.step("pauses-on-failure", func(ctx context.Context) error {
		if err := waitRollout(ctx, "paused"); err != nil {
			return err
		}
		reason, _, err := text(ctx, "[data-testid=rollout-reason]")
		if err != nil {
			return err
		}
		if !strings.Contains(reason, "herd-0") || !strings.Contains(strings.ToLower(reason), "image") {
			return fmt.Errorf("the pause reason reads %q; want herd-0 and the image", reason)
		}
		if st, _, _ := attr(ctx, "[data-testid=item-herd-2]", "data-state"); st != "pending" {
			return fmt.Errorf("herd-2 (batch 2) is %q while batch 1 failed", st)
		}
		return j.checkA11y(ctx, "paused rollout")
	})

	j.step("cancel", func(ctx context.Context) error {
		resp, err := clickAndLoad(ctx, "[data-testid=rollout-cancel]")
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, rolloutPage); err != nil {
			return err
		}
		if st, _, _ := text(ctx, "[data-testid=rollout-state]"); st != "cancelled" {
			return fmt.Errorf("after cancel the rollout reads %q", st)
		}
		if d := j.dialogsSeen(); len(d) == 0 || !strings.Contains(d[len(d)-1], "Cancel this rollout") {
			return fmt.Errorf("no confirmation before cancelling (dialogs %q)", d)
		}
		return nil
	})

	j.step("second-rollout-completes-live", func(ctx context.Context) error {
		if err := sc.publish(ctx, "quay.io/kubevirt/cirros-container-disk-demo:v1.8.1"); err != nil {
			return err
		}
		if err := start(ctx, "2"); err != nil {
			return err
		}
		if err := waitRollout(ctx, "completed"); err != nil {
			return err
		}
		sum, _, _ := text(ctx, "[data-testid=rollout-summary]")
		if !strings.Contains(sum, "4 of 4 rebuilt") {
			return fmt.Errorf("the summary reads %q", sum)
		}
		return j.checkA11y(ctx, "completed rollout")
	})

	j.step("owner-sees-rollout-in-timeline", func(ctx context.Context) error {
		if err := j.signIn(ctx, "developer", "Dana Developer"); err != nil {
			return err
		}
		resp, err := j.open(ctx, fmt.Sprintf("/requests/%d", ids[3]))
		if err != nil {
			return err
		}
		if err := expectPage(resp, 200, regexp.MustCompile(`^/requests/\d+$`)); err != nil {
			return err
		}
		body, _, err := text(ctx, "main")
		if err != nil {
			return err
		}
		if !strings.Contains(body, "will rebuild herd-3") || !strings.Contains(body, "v3") {
			return fmt.Errorf("the VM's page does not tell the owner about the rollout")
		}
		return nil
	})
}
