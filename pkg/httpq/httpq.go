// Package httpq is the transport of a remote runner: the runner of
// package runner, unchanged, over a dispatch API reached by HTTP(S)
// instead of the queues, bucket and status store themselves, whatever
// backend is behind that API.
//
// # What it provides
//
//   - Tasks: a gocloud pubsub subscription per queue served (Opener),
//     whose deliveries are leases (POST /v1/leases naming the queue takes
//     one per free worker; each delivery's LeaseControl extends it, POST
//     /v1/leases/{id}/extend; Ack and Nack settle it). A lease is the
//     message's own visibility timeout on the dispatcher's queue: a runner
//     that dies stops extending it, and the message goes to another
//     runner when it ends.
//   - Events: a gocloud pubsub topic posting to POST /v1/events, which the
//     dispatcher publishes on its events topic for the collector.
//   - Archive: a gocloud blob bucket over /v1/blobs/{key}, for payloads,
//     results, logs and bundles.
//   - Statuses: the runner's starts (POST /v1/tasks/starts, which numbers
//     attempts as task.Store.StartMany does) and its heartbeat's
//     cancellation check (POST /v1/tasks/states).
//
// Every call carries the API key as a bearer token. The runner's rules
// hold as on any queue: its outcome event (and result, and logs) is
// posted before the ack, so a runner killed at any point loses nothing.
package httpq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/pkg/task/driver"
)

// Remote is one dispatch API, as a remote runner reaches it.
type Remote struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	key  string
	hc   *http.Client
	// Lease is how long each take and extension hides a message (30s);
	// Wait how long a take waits for a message (20s).
	lease, wait time.Duration
	log         *slog.Logger
}

// Options tune a Remote. Zero values take the defaults in parentheses.
type Options struct {
	// APIKey is sent as a bearer token.
	APIKey string
	// HTTPClient makes the calls (one with no overall timeout: takes
	// long-poll).
	HTTPClient *http.Client
	// Lease is how long each take hides a message before the runner's
	// first heartbeat extends it (30s; the runner's own Lease is a good
	// value).
	Lease time.Duration
	// Wait is how long one take waits for a message (20s).
	Wait time.Duration
	// Log receives what fails outside any call's error (an ack refused).
	Log *slog.Logger
}

// New returns the Remote at base, an http:// or https:// URL.
func New(base string, o Options) (*Remote, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", base)
	}
	r := &Remote{base: strings.TrimRight(base, "/"), key: strings.TrimSpace(o.APIKey), hc: o.HTTPClient, lease: o.Lease, wait: o.Wait}
	if r.hc == nil {
		r.hc = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute,
			DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	if r.log = o.Log; r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.lease <= 0 {
		r.lease = 30 * time.Second
	}
	if r.wait <= 0 {
		r.wait = 20 * time.Second
	}
	return r, nil
}

// Resources returns the remote runner's events topic and archive (Tasks
// and Store are nil: see Opener and Statuses).
func (r *Remote) Resources() *task.Resources {
	t := pubsub.NewTopic(&topic{r: r}, nil)
	return &task.Resources{
		Events:  task.NewTopic(t, r.base+"/v1/events"),
		Archive: task.NewArchive(blob.NewBucket(&bucket{r: r})),
	}
}

// Opener returns the opener of the subscription of tasks queue queue
// ("" or "default": the default queue) over the leases.
func (r *Remote) Opener(queue string) task.Opener {
	if queue == task.DefaultQueue {
		queue = "" // a take names no queue for default
	}
	return func(ctx context.Context) (*task.Subscription, error) {
		s := pubsub.NewSubscription(&subscription{r: r, queue: queue}, nil, nil)
		url := r.base + "/v1/leases"
		if queue != "" {
			url += " (queue " + queue + ")"
		}
		return task.NewSubscription(s, url), nil
	}
}

// Statuses returns what the runner reads and writes of statuses (it
// satisfies runner.Statuses).
func (r *Remote) Statuses() *Statuses { return &Statuses{r: r} }

// ErrQueueNotLeased is wrapped by Check's error for a queue the
// dispatcher does not lease tasks of.
var ErrQueueNotLeased = errors.New("the dispatcher does not lease tasks of this queue")

// Check asks the dispatcher whether it answers, takes the key and serves
// the lease endpoints for each of queues ("default" if none): GET
// /v1/leases lists the queues it leases tasks of.
func (r *Remote) Check(ctx context.Context, queues ...string) error {
	var out struct {
		Queues []string `json:"queues"`
	}
	if err := r.call(ctx, "GET", "/v1/leases", nil, &out); err != nil {
		return fmt.Errorf("dispatcher %s: %w", r.base, err)
	}
	if len(queues) == 0 {
		queues = []string{task.DefaultQueue}
	}
	for _, q := range queues {
		if !slices.Contains(out.Queues, q) {
			return fmt.Errorf("dispatcher %s: queue %s: %w (it leases %s)", r.base, q, ErrQueueNotLeased, strings.Join(out.Queues, ", "))
		}
	}
	return nil
}

// call posts in as JSON (nil: no body) and decodes a 2xx JSON answer into
// out (nil: discarded). A non-2xx answer is a *client.Error.
func (r *Remote) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
	}
	resp, err := r.do(ctx, method, path, body, "application/json", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// do sends one request and returns its answer if it is 2xx, else an
// error: a *client.Error for an answer, ctx's own error unwrapped.
func (r *Remote) do(ctx context.Context, method, path string, body []byte, contentType string, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json, application/problem+json;q=0.9, */*;q=0.1")
	req.Header.Set("User-Agent", "drover-remote-runner")
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	return nil, fmt.Errorf("%s %s: %w", method, path, problem(resp))
}

// problem reads a non-2xx answer as a *client.Error.
func problem(resp *http.Response) *client.Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &client.Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	var p struct {
		Type, Title, Detail string
	}
	if json.Unmarshal(b, &p) == nil && p.Title != "" {
		e.Type, e.Title, e.Detail = p.Type, p.Title, p.Detail
	} else if len(b) > 0 {
		e.Detail = strings.TrimSpace(string(b[:min(len(b), 200)]))
	}
	return e
}

// status is err's HTTP status, 0 if it is no answer.
func status(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// transient reports whether err is worth trying again: no answer, or
// 502, 503, 504 or 429.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch status(err) {
	case 0, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// retrying calls f up to 4 times while it fails transiently, backing off
// from 200ms.
func retrying(ctx context.Context, f func() error) error {
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		err := f()
		if err == nil || try == 4 || !transient(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait + rand.N(wait/2))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

// errorCode classifies err for gocloud's portable types.
func errorCode(err error) gcerrors.ErrorCode {
	if c := driver.Code(err); c != gcerrors.Unknown {
		return c
	}
	switch s := status(err); {
	case s == http.StatusNotFound || s == http.StatusGone:
		return gcerrors.NotFound
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return gcerrors.PermissionDenied
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity || s == http.StatusRequestEntityTooLarge:
		return gcerrors.InvalidArgument
	case s == http.StatusConflict:
		return gcerrors.FailedPrecondition
	case s == http.StatusTooManyRequests:
		return gcerrors.ResourceExhausted
	case transient(err):
		return gcerrors.Unknown
	}
	return gcerrors.Unknown
}
