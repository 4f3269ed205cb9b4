// Package events delivers machines' state transitions to consumers outside
// drover: webhooks (JSON signed with an HMAC) and Alertmanager (a silence
// while a machine is in maintenance). The queue is the timeline itself,
// written in the transition's own transaction; each consumer keeps a cursor
// in the store and moves it only past what it delivered, retrying with
// backoff, so nothing is lost across restarts and a consumer that is down
// gets everything, in order, when it is back (at least once: a receiver
// dedupes by the event id).
package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/store"
)

// Source is the outbox: the store's transitions and the consumers' cursors.
type Source interface {
	Transitions(ctx context.Context, afterID int64, limit int) ([]store.Transition, error)
	EventCursor(ctx context.Context, name string) (int64, error)
	SetEventCursor(ctx context.Context, name string, afterID int64, lastError string) error
}

// Sink is one consumer. Deliver returns an error when the transition must be
// tried again later; it must tolerate getting the same transition twice.
type Sink interface {
	Name() string // the cursor's name: stable across restarts
	Deliver(ctx context.Context, t store.Transition) error
}

// Config is what the dispatcher runs with.
type Config struct {
	Source     Source
	Sinks      []Sink
	Poll       time.Duration // how often the outbox is read when idle (default 1s)
	MinBackoff time.Duration // first wait after a failed delivery (default 1s)
	MaxBackoff time.Duration // the longest wait between tries (default 5m)
	Log        *slog.Logger
}

// Dispatcher runs every sink's delivery loop.
type Dispatcher struct {
	cfg       Config
	delivered *prometheus.CounterVec
	failures  *prometheus.CounterVec
	pending   *prometheus.GaugeVec
}

// New makes a dispatcher; Run delivers.
func New(cfg Config) *Dispatcher {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Dispatcher{cfg: cfg,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_events_delivered_total", Help: "State transitions delivered, by consumer."}, []string{"sink"}),
		failures:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_events_failures_total", Help: "Failed delivery attempts (retried with backoff), by consumer."}, []string{"sink"}),
		pending:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_events_failing", Help: "1 while a consumer's oldest undelivered transition keeps failing."}, []string{"sink"}),
	}
}

// Collectors are the dispatcher's metrics.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{d.delivered, d.failures, d.pending}
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	done := make(chan struct{})
	for _, s := range d.cfg.Sinks {
		go func() {
			defer func() { done <- struct{}{} }()
			d.run(ctx, s)
		}()
	}
	for range d.cfg.Sinks {
		<-done
	}
	return nil
}

func (d *Dispatcher) sleep(ctx context.Context, t time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(t):
		return true
	}
}

func (d *Dispatcher) run(ctx context.Context, s Sink) {
	name, log := s.Name(), d.cfg.Log.With("sink", s.Name())
	src := d.cfg.Source
	var cursor int64
	for {
		var err error
		if cursor, err = src.EventCursor(ctx, name); err == nil {
			break
		}
		log.Error("events: read cursor", "err", err)
		if !d.sleep(ctx, d.cfg.Poll) {
			return
		}
	}
	backoff := d.cfg.MinBackoff
	for ctx.Err() == nil {
		ts, err := src.Transitions(ctx, cursor, 100)
		if err != nil {
			log.Error("events: read transitions", "err", err)
		}
		if len(ts) == 0 {
			if !d.sleep(ctx, d.cfg.Poll) {
				return
			}
			continue
		}
		for _, t := range ts {
			for {
				err := s.Deliver(ctx, t)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				d.failures.WithLabelValues(name).Inc()
				d.pending.WithLabelValues(name).Set(1)
				log.Warn("events: delivery failed; retrying", "event", t.ID, "machine", t.Machine.Label(), "in", backoff, "err", err)
				if err := src.SetEventCursor(ctx, name, cursor, err.Error()); err != nil {
					log.Error("events: record failure", "err", err)
				}
				if !d.sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, d.cfg.MaxBackoff)
			}
			backoff = d.cfg.MinBackoff
			d.pending.WithLabelValues(name).Set(0)
			cursor = t.ID
			if err := src.SetEventCursor(ctx, name, cursor, ""); err != nil {
				log.Error("events: record delivery", "err", err)
			}
			d.delivered.WithLabelValues(name).Inc()
		}
	}
}
