package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// Event is what a webhook receives for one transition.
type Event struct {
	ID     int64         `json:"id"` // increasing; a receiver dedupes by it
	Type   string        `json:"type"`
	At     time.Time     `json:"at"`
	Actor  string        `json:"actor"`
	From   machine.State `json:"from"`
	To     machine.State `json:"to"`
	Reason string        `json:"reason,omitempty"`
	// Machine is the machine as it is when the event is delivered.
	Machine EventMachine `json:"machine"`
}

// EventMachine is the machine of an event.
type EventMachine struct {
	Name        string                   `json:"name"`
	MAC         string                   `json:"mac"`
	Slot        string                   `json:"slot,omitempty"`
	State       machine.State            `json:"state"`
	Maintenance *machine.MaintenanceInfo `json:"maintenance,omitempty"`
}

// NewEvent is the webhook body of a transition.
func NewEvent(t store.Transition) Event {
	m := t.Machine
	return Event{ID: t.ID, Type: "transition", At: t.At, Actor: t.Actor, From: t.From, To: t.To, Reason: t.Reason,
		Machine: EventMachine{Name: m.Name, MAC: m.MAC, Slot: m.SlotKey, State: m.State, Maintenance: m.Maintenance}}
}

// Signature is the X-Drover-Signature-256 header of a body: "sha256=" and
// the hex HMAC-SHA256 of the body with the shared secret.
func Signature(secret, body []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

// Webhook POSTs every transition as JSON, signed.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client
}

// Name is the webhook's cursor name.
func (w *Webhook) Name() string { return "webhook " + w.URL }

// Deliver POSTs the event; any answer but 2xx is a failure to retry.
func (w *Webhook) Deliver(ctx context.Context, t store.Transition) error {
	body, err := json.Marshal(NewEvent(t))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "drover-events")
	req.Header.Set("X-Drover-Event", "transition")
	req.Header.Set("X-Drover-Delivery", fmt.Sprint(t.ID))
	req.Header.Set("X-Drover-Signature-256", Signature(w.Secret, body))
	return send(w.client(), req)
}

func (w *Webhook) client() *http.Client {
	if w.Client != nil {
		return w.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func send(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s %s", req.Method, req.URL.Redacted(), resp.Status, strings.TrimSpace(string(b)))
	}
	io.Copy(io.Discard, resp.Body)
	return nil
}

// DefaultSilence is how long a silence lasts for maintenance with no expiry.
const DefaultSilence = 24 * time.Hour

// silenceTag starts the comment of every silence drover makes, so that it
// expires only its own.
const silenceTag = "drover maintenance: "

// Alertmanager silences a machine's alerts (matcher name="NAME", the label
// drover's Prometheus discovery gives) while it is in maintenance: a
// silence with the maintenance's reason, owner and expiry when it enters,
// expired when it leaves.
type Alertmanager struct {
	URL    string // e.g. http://alertmanager:9093
	Client *http.Client
}

// Name is the Alertmanager's cursor name.
func (a *Alertmanager) Name() string { return "alertmanager " + a.URL }

// Deliver acts on transitions into and out of maintenance; others pass.
func (a *Alertmanager) Deliver(ctx context.Context, t store.Transition) error {
	name := t.Machine.Name
	if name == "" || (t.To != machine.Maintenance && t.From != machine.Maintenance) {
		return nil
	}
	// Expire first in both cases: entering again (or a retried delivery)
	// replaces the silence instead of adding one.
	if err := a.expire(ctx, name); err != nil {
		return err
	}
	if t.To != machine.Maintenance {
		return nil
	}
	ends := t.At.Add(DefaultSilence)
	owner, reason := "drover", t.Reason
	if mi := t.Machine.Maintenance; mi != nil && t.Machine.State == machine.Maintenance {
		if !mi.Expires.IsZero() {
			ends = mi.Expires
		}
		if mi.Owner != "" {
			owner = mi.Owner
		}
		reason = mi.Reason
	}
	if !ends.After(time.Now()) {
		return nil // the maintenance is over already
	}
	body, _ := json.Marshal(map[string]any{
		"matchers":  []map[string]any{{"name": "name", "value": name, "isRegex": false, "isEqual": true}},
		"startsAt":  t.At.UTC().Format(time.RFC3339),
		"endsAt":    ends.UTC().Format(time.RFC3339),
		"createdBy": owner,
		"comment":   fmt.Sprintf("%s%s (%s, by %s)", silenceTag, reason, name, t.Actor),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(a.URL, "/")+"/api/v2/silences", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return send(a.client(), req)
}

func (a *Alertmanager) client() *http.Client {
	if a.Client != nil {
		return a.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// expire ends drover's active or pending silences of a machine.
func (a *Alertmanager) expire(ctx context.Context, name string) error {
	base := strings.TrimSuffix(a.URL, "/")
	q := url.Values{"filter": {fmt.Sprintf("name=%q", name)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v2/silences?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := a.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/api/v2/silences: %s", base, resp.Status)
	}
	var silences []struct {
		ID      string `json:"id"`
		Comment string `json:"comment"`
		Status  struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&silences); err != nil {
		return fmt.Errorf("GET %s/api/v2/silences: %w", base, err)
	}
	for _, s := range silences {
		if s.Status.State == "expired" || !strings.HasPrefix(s.Comment, silenceTag) {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/api/v2/silence/"+url.PathEscape(s.ID), nil)
		if err != nil {
			return err
		}
		if err := send(a.client(), req); err != nil {
			return err
		}
	}
	return nil
}
