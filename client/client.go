package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/pkg/task"
)

// Default retry behaviour of requests that are safe to repeat.
const (
	defaultTries   = 4
	defaultBackoff = 200 * time.Millisecond
	maxBackoff     = 5 * time.Second

	// maxResponse bounds the JSON documents the client reads: a batch of
	// 1000 statuses with small inline results fits with room to spare.
	maxResponse = 32 << 20
)

// Client talks to a Drover dispatcher over its HTTP API. Its methods are safe
// for concurrent use. Create one with New.
type Client struct {
	base   string
	apiKey string
	hc     *http.Client

	// tries is how many times a retryable request is sent at most, and
	// backoff the pause after the first failure, doubled after each one.
	tries   int
	backoff time.Duration
}

// Option configures a Client in New.
type Option func(*Client)

// WithAPIKey makes the client send key as a bearer token
// (Authorization: Bearer key) on every request. It matches one of the
// dispatcher's DROVER_API_KEYS.
func WithAPIKey(key string) Option {
	return func(c *Client) { c.apiKey = key }
}

// WithHTTPClient makes the client send its requests through hc instead of
// http.DefaultClient. If hc has a Timeout, Wait asks the server to hold each
// long poll for less than that.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// New returns a client for the dispatcher at baseURL, such as
// "http://127.0.0.1:8080" or "https://drover.example.com/prefix". The URL is
// not checked until the first request.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:    strings.TrimRight(baseURL, "/"),
		hc:      http.DefaultClient,
		tries:   defaultTries,
		backoff: defaultBackoff,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Submit submits one task (POST /v1/tasks) and returns its first status
// document, normally in state queued. Only spec.Function is required; the
// server fills the other fields' defaults.
//
// Submit is retried on connection errors and 503 only when
// spec.IdempotencyKey is set, since the server then returns the first task
// instead of creating a second one.
func (c *Client) Submit(ctx context.Context, spec task.Spec) (*task.Status, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode task spec: %w", err)
	}
	var st task.Status
	if err := c.call(ctx, http.MethodPost, "/v1/tasks", body, spec.IdempotencyKey != "", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// SubmitBatch submits specs in one request (POST /v1/tasks/batch, at most
// 1000) and returns their statuses in the same order. The server accepts or
// rejects the batch as a whole. It is retried like Submit only when every
// spec has an idempotency key.
func (c *Client) SubmitBatch(ctx context.Context, specs []task.Spec) ([]*task.Status, error) {
	body, err := json.Marshal(struct {
		Tasks []task.Spec `json:"tasks"`
	}{specs})
	if err != nil {
		return nil, fmt.Errorf("encode task specs: %w", err)
	}
	keyed := len(specs) > 0
	for _, s := range specs {
		keyed = keyed && s.IdempotencyKey != ""
	}
	var out statusList
	const path = "/v1/tasks/batch"
	if err := c.call(ctx, http.MethodPost, path, body, keyed, &out); err != nil {
		return nil, err
	}
	if len(out.Tasks) != len(specs) {
		return nil, fmt.Errorf("POST %s: response has %d statuses for %d tasks", path, len(out.Tasks), len(specs))
	}
	return out.Tasks, nil
}

// statusList is the body of a batch submit's response.
type statusList struct {
	Tasks []*task.Status `json:"tasks"`
}

// Get returns the status document of task id (GET /v1/tasks/{id}). A task
// that does not exist is an *Error for which IsNotFound is true.
func (c *Client) Get(ctx context.Context, id string) (*task.Status, error) {
	return c.get(ctx, id, 0)
}

func (c *Client) get(ctx context.Context, id string, wait time.Duration) (*task.Status, error) {
	if id == "" {
		return nil, errors.New("client: empty task id")
	}
	path := "/v1/tasks/" + url.PathEscape(id)
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	var st task.Status
	if err := c.call(ctx, http.MethodGet, path, nil, true, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// WaitOptions tunes Wait. The zero value is ready to use.
type WaitOptions struct {
	// PollWait is how long each request asks the server to hold it until
	// the task is terminal (the wait query parameter). Zero means 30s.
	PollWait time.Duration
	// MinInterval is the least time between the starts of two requests,
	// so that a server answering at once is not polled in a tight loop.
	// Zero means 1s.
	MinInterval time.Duration
}

// Wait returns task id's status once it is terminal (succeeded, failed or
// cancelled), long-polling GET /v1/tasks/{id}?wait=30s as many times as it
// takes. A task that ends failed or cancelled is not an error: check the
// returned State.
//
// Wait stops when ctx is done, returning ctx.Err() unwrapped. On any error
// it also returns the last status it read (nil if none), so a caller can
// report where the task got to.
func (c *Client) Wait(ctx context.Context, id string, opts WaitOptions) (*task.Status, error) {
	if opts.PollWait <= 0 {
		opts.PollWait = 30 * time.Second
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = time.Second
	}
	var last *task.Status
	for {
		start := time.Now()
		st, err := c.get(ctx, id, c.pollWait(ctx, opts.PollWait))
		if err != nil {
			return last, err
		}
		last = st
		if st.State.Terminal() {
			return st, nil
		}
		if err := sleep(ctx, opts.MinInterval-time.Since(start)); err != nil {
			return last, err
		}
	}
}

// pollWait shortens a long poll so that the server answers before ctx's
// deadline or the HTTP client's timeout cuts the request off. Under a
// second it asks for no wait at all.
func (c *Client) pollWait(ctx context.Context, wait time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	if t := c.hc.Timeout; t > 0 {
		wait = min(wait, t-time.Second)
	}
	wait = wait.Truncate(time.Second)
	if wait < time.Second {
		return 0
	}
	return wait
}

// ListOptions filters and pages List. Zero fields do not filter.
type ListOptions struct {
	// State keeps only tasks in this state.
	State task.State
	// Function keeps only tasks of this function.
	Function string
	// Queue keeps only tasks of this queue.
	Queue string
	// Limit is the page size; zero means the server's default.
	Limit int
	// Cursor continues from a previous Page's NextCursor.
	Cursor string
}

// Page is one page of List, newest task first.
type Page struct {
	Tasks []*task.Status `json:"tasks"`
	// NextCursor, when not empty, is the ListOptions.Cursor of the next
	// page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// List returns one page of tasks, newest first
// (GET /v1/tasks?state=&function=&queue=&limit=&cursor=). See ListAll to range over
// every page.
func (c *Client) List(ctx context.Context, opts ListOptions) (*Page, error) {
	q := url.Values{}
	if opts.State != "" {
		q.Set("state", string(opts.State))
	}
	if opts.Function != "" {
		q.Set("function", opts.Function)
	}
	if opts.Queue != "" {
		q.Set("queue", opts.Queue)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	path := "/v1/tasks"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p Page
	if err := c.call(ctx, http.MethodGet, path, nil, true, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListAll ranges over every task matching opts, newest first, fetching pages
// of opts.Limit as it goes from opts.Cursor on. It stops at the first error,
// which it yields with a nil status.
//
//	for st, err := range c.ListAll(ctx, client.ListOptions{State: task.Failed}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(st.ID, st.Error)
//	}
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[*task.Status, error] {
	return func(yield func(*task.Status, error) bool) {
		for {
			p, err := c.List(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, st := range p.Tasks {
				if !yield(st, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if p.NextCursor == opts.Cursor {
				yield(nil, fmt.Errorf("GET /v1/tasks: server returned cursor %q again", p.NextCursor))
				return
			}
			opts.Cursor = p.NextCursor
		}
	}
}

// Cancel cancels task id (DELETE /v1/tasks/{id}) and returns its status: a
// queued task never runs, a running one has its context cancelled at its
// next heartbeat. A task already terminal is an *Error for which IsConflict
// is true. Cancel is not retried.
func (c *Client) Cancel(ctx context.Context, id string) (*task.Status, error) {
	if id == "" {
		return nil, errors.New("client: empty task id")
	}
	path := "/v1/tasks/" + url.PathEscape(id)
	resp, err := c.do(ctx, http.MethodDelete, path, nil, false)
	if err != nil {
		return nil, err
	}
	b, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("DELETE %s: read response: %w", path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 { // 204: read the status instead
		return c.Get(ctx, id)
	}
	var st task.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("DELETE %s: decode response: %w", path, err)
	}
	return &st, nil
}

// Result opens the result body of task id (GET /v1/tasks/{id}/result),
// following a redirect to a signed URL if the server sends one, and returns
// it with its Content-Type. The caller must close the body. A task with no
// result yet is an *Error (typically 404 or 409).
func (c *Client) Result(ctx context.Context, id string) (body io.ReadCloser, contentType string, err error) {
	if id == "" {
		return nil, "", errors.New("client: empty task id")
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/result", nil, true)
	if err != nil {
		return nil, "", err
	}
	return resp.Body, resp.Header.Get("Content-Type"), nil
}

// Runners returns the runners the dispatcher has seen recently, from their
// heartbeats (GET /v1/runners).
func (c *Client) Runners(ctx context.Context) ([]task.RunnerInfo, error) {
	var out struct {
		Runners []task.RunnerInfo `json:"runners"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/runners", nil, true, &out); err != nil {
		return nil, err
	}
	return out.Runners, nil
}

// Retry re-runs a failed or cancelled task as a new task, linked to the
// old one by its idempotency key "retry:<id>"; retrying the same task
// again returns that same new task (POST /v1/tasks/{id}/retry).
func (c *Client) Retry(ctx context.Context, id string) (*task.Status, error) {
	var st task.Status
	if err := c.call(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/retry", nil, true, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// DeadLetter is a dead-lettered task the sweeper kept for redrive.
type DeadLetter struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Queue    string    `json:"queue"`
	At       time.Time `json:"at"`
}

// DeadLetters lists the dead letters kept for redrive, of queue if not
// empty, up to limit if positive (GET /v1/deadletters).
func (c *Client) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	q := url.Values{}
	if queue != "" {
		q.Set("queue", queue)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/deadletters"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	if err := c.call(ctx, http.MethodGet, path, nil, true, &out); err != nil {
		return nil, err
	}
	return out.DeadLetters, nil
}

// Redrive submits the dead letters (of queue if not empty, up to limit if
// positive) again as retries of their tasks and returns the new tasks;
// each dead letter is deleted only once its new task is enqueued
// (POST /v1/deadletters/redrive). It is not retried on a transport error:
// run it again, which redrives what is left without duplicates.
func (c *Client) Redrive(ctx context.Context, queue string, limit int) ([]*task.Status, error) {
	body, err := json.Marshal(map[string]any{"queue": queue, "limit": max(limit, 0)})
	if err != nil {
		return nil, err
	}
	var out struct {
		Redriven []*task.Status `json:"redriven"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/deadletters/redrive", body, false, &out); err != nil {
		return nil, err
	}
	return out.Redriven, nil
}

// Stats returns counts of tasks by state, function and queue, the last
// hour minute by minute, and the runners online (GET /v1/stats).
func (c *Client) Stats(ctx context.Context) (*task.Stats, error) {
	var out task.Stats
	if err := c.call(ctx, http.MethodGet, "/v1/stats", nil, true, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ready reports whether the dispatcher can reach its queue, bucket and status
// store (GET /readyz): nil if so, else the *Error it answered or the
// transport error. It is not retried, so it answers for the present moment.
func (c *Client) Ready(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, "/readyz", nil, false)
	if err != nil {
		return err
	}
	_, err = readBody(resp)
	return err
}

// call sends a request and decodes its 2xx JSON response into out.
func (c *Client) call(ctx context.Context, method, path string, body []byte, retry bool, out any) error {
	resp, err := c.do(ctx, method, path, body, retry)
	if err != nil {
		return err
	}
	b, err := readBody(resp)
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if err := decode(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// decode is json.Unmarshal into out, a zero value, but decodes status
// documents with task's hand-written decoder when it can.
func decode(b []byte, out any) error {
	switch out := out.(type) {
	case *task.Status:
		if task.DecodeStatus(b, out) {
			return nil
		}
	case *statusList:
		if sts, ok := task.DecodeStatusList(b); ok {
			out.Tasks = sts
			return nil
		}
	}
	return json.Unmarshal(b, out)
}

// do sends a request and returns its response if the status is 2xx. Any
// other status is returned as an *Error, any failure to get a response as
// an error naming method and path, and ctx's own error unwrapped. When retry
// is set, connection errors and 502, 503 and 504 are retried a few times
// with a jittered exponential backoff.
func (c *Client) do(ctx context.Context, method, path string, body []byte, retry bool) (*http.Response, error) {
	tries := 1
	if retry {
		tries = max(c.tries, 1)
	}
	pause := c.backoff
	for try := 1; ; try++ {
		req, err := c.newRequest(ctx, method, path, body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		resp, err := c.hc.Do(req)
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		wait := pause
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			err = fmt.Errorf("%s %s: %w", method, path, err)
		} else {
			transient := resp.StatusCode == http.StatusBadGateway ||
				resp.StatusCode == http.StatusServiceUnavailable ||
				resp.StatusCode == http.StatusGatewayTimeout
			if ra := retryAfter(resp); ra > wait {
				wait = ra
			}
			err = decodeError(resp)
			if !transient {
				return nil, err
			}
		}
		if try >= tries || wait > maxBackoff {
			return nil, err
		}
		if err := sleep(ctx, wait+rand.N(wait/2+1)); err != nil {
			return nil, err
		}
		pause = min(2*pause, maxBackoff)
	}
}

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json;q=0.9, */*;q=0.1")
	req.Header.Set("User-Agent", "drover-go-client")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	// A span in ctx becomes the parent of what dispatch does for the
	// request (W3C traceparent): a submitted task's trace starts there.
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	return req, nil
}

// readBody reads and closes a response body, up to maxResponse bytes.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	return b, nil
}

// retryAfter reads a Retry-After header given in seconds.
func retryAfter(resp *http.Response) time.Duration {
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// sleep waits for d or until ctx is done, returning ctx.Err() then.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
