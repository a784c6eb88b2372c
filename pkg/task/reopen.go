package task

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Opener opens a subscription. The runner and the collector call it again
// after the subscription fails (a queue that was unreachable for a while),
// through a Reopener.
type Opener func(ctx context.Context) (*Subscription, error)

// URLOpener returns the Opener of the subscription at url.
func URLOpener(url string) Opener {
	return func(ctx context.Context) (*Subscription, error) { return OpenSubscription(ctx, url) }
}

// CheckedOpener opens the subscription at url once now, so that a bad URL
// stops the process at start (the error names variable, the setting that
// holds url), and hands that subscription to the first call of the Opener
// it returns.
func CheckedOpener(ctx context.Context, variable, url string) (Opener, error) {
	first, err := OpenSubscription(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	var once sync.Once
	return func(ctx context.Context) (*Subscription, error) {
		var s *Subscription
		once.Do(func() { s, first = first, nil })
		if s != nil {
			return s, nil
		}
		return OpenSubscription(ctx, url)
	}, nil
}

// Reopener backoff: from reopenMin, doubling per failure up to reopenMax;
// back to reopenMin once a subscription has worked for reopenReset.
const (
	reopenMin   = 100 * time.Millisecond
	reopenMax   = 10 * time.Second
	reopenReset = time.Minute
)

// Reopener keeps one subscription open for the receivers that share it:
// when one reports that it failed, the subscription is shut down and
// opened again, backing off between tries, and every receiver gets the new
// one.
type Reopener struct {
	open Opener
	log  *slog.Logger
	what string // the subscription's name in logs

	mu      sync.Mutex
	sub     *Subscription
	version int
	opened  time.Time
	wait    time.Duration
}

// NewReopener returns a Reopener over open; what names the subscription
// in log messages.
func NewReopener(open Opener, log *slog.Logger, what string) *Reopener {
	return &Reopener{open: open, log: log, what: what, wait: reopenMin}
}

// Current returns the open subscription and its version, opening it if
// need be. A receiver passes the version it last got and, when receiving
// from it failed, the failure: if no other receiver has reopened it since,
// Current shuts it down and reopens it after a backoff. Current returns an
// error only when ctx is done first.
func (r *Reopener) Current(ctx context.Context, seen int, failed error) (*Subscription, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if failed != nil && seen == r.version && r.sub != nil {
		if time.Since(r.opened) > reopenReset {
			r.wait = reopenMin // it worked for a while: back off afresh
		}
		r.log.Warn("subscription failed; reopening", "subscription", r.what, "err", failed, "retry_in", r.wait)
		r.shutdown(ctx)
		if err := r.pause(ctx); err != nil {
			return nil, r.version, err
		}
	}
	for r.sub == nil {
		sub, err := r.open(ctx)
		if err == nil {
			r.sub, r.opened = sub, time.Now()
			r.version++
			break
		}
		r.log.Error("could not open subscription", "subscription", r.what, "err", err, "retry_in", r.wait)
		if err := r.pause(ctx); err != nil {
			return nil, r.version, err
		}
	}
	return r.sub, r.version, nil
}

// pause waits the backoff and doubles it.
func (r *Reopener) pause(ctx context.Context) error {
	t := time.NewTimer(r.wait)
	defer t.Stop()
	r.wait = min(r.wait*2, reopenMax)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Reopener) shutdown(ctx context.Context) error {
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := r.sub.Shutdown(shut)
	r.sub = nil
	return err
}

// Close shuts the open subscription down, if there is one, flushing its
// acks within a fresh bound.
func (r *Reopener) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		return nil
	}
	return r.shutdown(ctx)
}
