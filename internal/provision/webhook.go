package provision

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"paddock/internal/store"
)

// Webhooks delivers notifications to outbound webhooks: Slack-compatible
// JSON (a "text" field, plus Paddock's own fields that Slack ignores),
// signed with HMAC-SHA256 in X-Paddock-Signature. Each notification is one
// River job, retried with backoff until every endpoint has it; each
// endpoint's outcome is recorded for the platform team's page.
type Webhooks struct {
	Store *store.Store
	// URLs are the endpoints; every notification goes to each.
	URLs []string
	// Secret signs each body; empty sends no signature.
	Secret string
	// BaseURL, when set, links notifications to request pages.
	BaseURL string
	// Client defaults to one with a 10 s timeout.
	Client *http.Client
	Log    *slog.Logger
	// RetryBase is the first wait before a retry, doubled for each further
	// one up to two hours; 0 means 10 s.
	RetryBase time.Duration
}

// Register adds the webhook worker to a River worker set.
func (h *Webhooks) Register(ws *river.Workers) { river.AddWorker(ws, &webhookWorker{h: h}) }

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Paddock-Signature"

// Sign returns the signature header value for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is body's signature under secret,
// comparing in constant time; receivers in Go can use it as is.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Endpoint names a webhook URL without revealing it (Slack webhook URLs are
// secrets): its host and a short hash of the whole URL.
func Endpoint(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	host := "webhook"
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		host = u.Host
	}
	return host + " #" + hex.EncodeToString(sum[:4])
}

// Payload is the JSON body of a webhook call.
type Payload struct {
	// Text is the message in Slack's mrkdwn.
	Text      string          `json:"text"`
	Event     string          `json:"event"`
	ID        int64           `json:"id"`
	CreatedAt time.Time       `json:"createdAt"`
	Request   *PayloadRequest `json:"request,omitempty"`
}

// PayloadRequest identifies the request a notification is about.
type PayloadRequest struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Team      string `json:"team"`
	Requester string `json:"requester"`
	State     string `json:"state"`
	URL       string `json:"url,omitempty"`
}

var eventTitles = map[string]string{
	store.NotifyApprovalNeeded:     "Approval needed",
	store.NotifyApproved:           "Approved",
	store.NotifyRejected:           "Rejected",
	store.NotifyVMReady:            "VM ready",
	store.NotifyProvisioningFailed: "Provisioning failed",
	store.NotifyLeaseExpiring:      "Lease expiring",
	store.NotifyVMExpired:          "VM expired",
}

func (h *Webhooks) payload(n store.Notification, r *store.Request) Payload {
	p := Payload{Event: n.Kind, ID: n.ID, CreatedAt: n.CreatedAt.UTC()}
	title := eventTitles[n.Kind]
	if title == "" {
		title = n.Kind
	}
	p.Text = "*" + title + "*: " + n.Text
	if r != nil {
		p.Request = &PayloadRequest{ID: r.ID, Name: r.Name, Team: r.TeamName, Requester: r.RequesterLogin, State: string(r.State)}
		label := r.TeamName + "/" + r.Name
		if h.BaseURL != "" {
			p.Request.URL = strings.TrimSuffix(h.BaseURL, "/") + "/requests/" + strconv.FormatInt(r.ID, 10)
			label = "<" + p.Request.URL + "|" + label + ">"
		}
		p.Text = "*" + title + "* " + label + ": " + n.Text
	}
	return p
}

type webhookWorker struct {
	river.WorkerDefaults[store.WebhookJob]
	h *Webhooks
}

// NextRetry backs off from RetryBase, doubling to at most 2 hours between tries.
func (w *webhookWorker) NextRetry(job *river.Job[store.WebhookJob]) time.Time {
	base := cmp.Or(w.h.RetryBase, 10*time.Second)
	d := min(base<<min(max(job.Attempt-1, 0), 20), 2*time.Hour)
	d += time.Duration(rand.Int64N(int64(d/4) + 1))
	return time.Now().Add(d)
}

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[store.WebhookJob]) error {
	return w.h.Deliver(ctx, job.Args.NotificationID, job.Attempt >= job.MaxAttempts)
}

// Deliver sends a notification to every endpoint that does not have it yet
// and records each outcome; final marks failures as given up. It returns an
// error (for River to retry) when any endpoint failed.
func (h *Webhooks) Deliver(ctx context.Context, notificationID int64, final bool) error {
	n, err := h.Store.Notification(ctx, notificationID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var req *store.Request
	if n.RequestID != nil {
		r, err := h.Store.Request(ctx, *n.RequestID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil {
			req = &r
		}
	}
	body, err := json.Marshal(h.payload(n, req))
	if err != nil {
		return err
	}
	var failed []string
	for _, u := range h.URLs {
		ep := Endpoint(u)
		done, err := h.Store.Delivered(ctx, n.ID, ep)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		status, msg := h.post(ctx, u, ep, n, body)
		if err := h.Store.RecordDelivery(ctx, n.ID, ep, status, msg, final); err != nil {
			return err
		}
		if msg != "" {
			failed = append(failed, ep+": "+msg)
			if h.Log != nil {
				h.Log.Warn("webhook delivery failed", "endpoint", ep, "notification", n.ID, "final", final, "err", msg)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("webhook delivery failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// post sends one delivery and returns the HTTP status and, on failure, a
// message that never contains the URL.
func (h *Webhooks) post(ctx context.Context, u, ep string, n store.Notification, body []byte) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, "the webhook URL is not valid"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Paddock-Webhook/1")
	req.Header.Set("X-Paddock-Event", n.Kind)
	req.Header.Set("X-Paddock-Delivery", strconv.FormatInt(n.ID, 10))
	if h.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(h.Secret, body))
	}
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return 0, strings.ReplaceAll(msg, u, ep)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		msg := "HTTP " + resp.Status
		if s := strings.TrimSpace(string(snippet)); s != "" {
			msg += ": " + s
		}
		return resp.StatusCode, msg
	}
	return resp.StatusCode, ""
}
