package awstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ThrottleConfig shapes a Throttle.
type ThrottleConfig struct {
	// Every call is delayed by a time drawn uniformly from [MinDelay,
	// MaxDelay] (50-300 ms if both are zero).
	MinDelay, MaxDelay time.Duration
	// StallRate is the chance that a call stalls for Stall on top of its
	// delay: a ReceiveMessage after the emulator has answered (the
	// messages it returns are in flight meanwhile), any other call before
	// it is forwarded.
	StallRate float64
	Stall     time.Duration
	// Hold, if not nil, is called with the operation (such as
	// "AmazonSQS.SendMessageBatch") and body of each request before it is
	// forwarded; it may block, to pause a chosen call.
	Hold func(op string, body []byte)
	// HoldResponse, if not nil, is called with the operation, the request
	// body and the emulator's status code once it has answered, before
	// the answer is passed on; it may block, to pause a caller after its
	// call took effect.
	HoldResponse func(op string, body []byte, status int)
	// Refuse, if not nil, is asked about each entry of a SendMessageBatch
	// by its message body: the entries it refuses are taken out of the
	// request before it is forwarded and answered as failed (code
	// InternalError, not the sender's fault), as SQS does when it cannot
	// take part of a batch. A batch refused whole is answered without
	// reaching the emulator.
	Refuse func(body string) bool
}

// refusedKey keys the IDs of the entries Refuse took out of a request.
type refusedKey struct{}

type bodyKey struct{}

// Throttle is an HTTP proxy in front of the emulator that makes it slow
// on purpose: every call delayed, some stalled past a visibility timeout.
// It reads the SQS calls going through it to tell, for each task message,
// how many times it was delivered, and which tasks' leases it may have
// made lapse by a stall (a stalled ReceiveMessage answer, visibility
// change or delete of one of their deliveries).
type Throttle struct {
	// Endpoint is the proxy's base URL, for AWS_ENDPOINT_URL.
	Endpoint string
	cfg      ThrottleConfig
	srv      *http.Server
	calls    atomic.Int64
	stalls   atomic.Int64

	mu         sync.Mutex
	deliveries map[string]int    // task ID → messages received
	handles    map[string]string // receipt handle → task ID
	lapsed     map[string]bool   // task IDs whose lease a stall may have let lapse
}

// StartThrottle starts a Throttle in front of target (an emulator's
// Endpoint) on a free loopback port. Close stops it.
func StartThrottle(target string, cfg ThrottleConfig) (*Throttle, error) {
	if cfg.MinDelay == 0 && cfg.MaxDelay == 0 {
		cfg.MinDelay, cfg.MaxDelay = 50*time.Millisecond, 300*time.Millisecond
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("throttle target %q: %w", target, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("throttle listen: %w", err)
	}
	t := &Throttle{
		Endpoint: "http://" + l.Addr().String(), cfg: cfg,
		deliveries: map[string]int{}, handles: map[string]string{}, lapsed: map[string]bool{},
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	rp.ModifyResponse = t.response
	rp.ErrorLog = log.New(io.Discard, "", 0) // callers that give up are expected
	t.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := t.request(r)
		ctx := context.WithValue(r.Context(), bodyKey{}, body)
		if refused, rest, all := t.refuse(r, body); len(refused) > 0 {
			if all {
				writeFailed(w, refused, sendBatchResult{})
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(rest)), int64(len(rest))
			ctx = context.WithValue(ctx, refusedKey{}, refused)
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
	}), ReadHeaderTimeout: time.Minute}
	go func() { _ = t.srv.Serve(l) }()
	return t, nil
}

// Close stops the proxy.
func (t *Throttle) Close() { _ = t.srv.Close() }

// Calls and Stalls count the calls seen and stalled.
func (t *Throttle) Calls() int64  { return t.calls.Load() }
func (t *Throttle) Stalls() int64 { return t.stalls.Load() }

// Deliveries returns, per task ID, how many times its message was
// received through the proxy.
func (t *Throttle) Deliveries() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.deliveries))
	for k, v := range t.deliveries {
		out[k] = v
	}
	return out
}

// Lapsed returns the IDs of tasks one of whose deliveries a stall may have
// let lapse: duplicates of them are the test's doing.
func (t *Throttle) Lapsed() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]bool, len(t.lapsed))
	for k := range t.lapsed {
		out[k] = true
	}
	return out
}

func (t *Throttle) delay() time.Duration {
	d := t.cfg.MinDelay
	if span := t.cfg.MaxDelay - t.cfg.MinDelay; span > 0 {
		d += rand.N(span)
	}
	return d
}

func (t *Throttle) stall() bool {
	if t.cfg.StallRate <= 0 || rand.Float64() >= t.cfg.StallRate {
		return false
	}
	t.stalls.Add(1)
	return true
}

// sqsRequest is what the proxy reads of an SQS JSON request.
type sqsRequest struct {
	ReceiptHandle string
	Entries       []struct{ ReceiptHandle string }
}

func (t *Throttle) request(r *http.Request) []byte {
	t.calls.Add(1)
	op := r.Header.Get("X-Amz-Target")
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if t.cfg.Hold != nil {
		t.cfg.Hold(op, body)
	}
	time.Sleep(t.delay())
	if op == "AmazonSQS.ReceiveMessage" || !t.stall() {
		return body
	}
	if strings.HasPrefix(op, "AmazonSQS.") {
		var in sqsRequest
		if json.Unmarshal(body, &in) == nil {
			t.mu.Lock()
			for _, h := range append([]string{in.ReceiptHandle}, entryHandles(in)...) {
				if id := t.handles[h]; id != "" {
					t.lapsed[id] = true
				}
			}
			t.mu.Unlock()
		}
	}
	time.Sleep(t.cfg.Stall)
	return body
}

func entryHandles(in sqsRequest) []string {
	var hs []string
	for _, e := range in.Entries {
		hs = append(hs, e.ReceiptHandle)
	}
	return hs
}

// refuse applies cfg.Refuse to a SendMessageBatch: it returns the IDs of
// the entries refused, the request body without them, and whether every
// entry was.
func (t *Throttle) refuse(r *http.Request, body []byte) (refused []string, rest []byte, all bool) {
	if t.cfg.Refuse == nil || r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" {
		return nil, nil, false
	}
	var in map[string]json.RawMessage
	var entries []map[string]any
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(in["Entries"], &entries) != nil {
		return nil, nil, false
	}
	var kept []map[string]any
	for _, e := range entries {
		if b, _ := e["MessageBody"].(string); t.cfg.Refuse(b) {
			id, _ := e["Id"].(string)
			refused = append(refused, id)
		} else {
			kept = append(kept, e)
		}
	}
	if len(refused) == 0 {
		return nil, nil, false
	}
	in["Entries"], _ = json.Marshal(kept)
	rest, _ = json.Marshal(in)
	return refused, rest, len(kept) == 0
}

// sendBatchResult is SQS's SendMessageBatch answer.
type sendBatchResult struct {
	Successful []json.RawMessage `json:"Successful"`
	Failed     []map[string]any  `json:"Failed"`
}

// writeFailed answers a SendMessageBatch with out, the refused entries
// added to its failed ones.
func writeFailed(w http.ResponseWriter, refused []string, out sendBatchResult) {
	if out.Successful == nil {
		out.Successful = []json.RawMessage{}
	}
	for _, id := range refused {
		out.Failed = append(out.Failed, map[string]any{"Id": id, "Code": "InternalError", "Message": "refused by the test proxy", "SenderFault": false})
	}
	body, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// response reads ReceiveMessage answers: deliveries per task message, and
// receipt handles, so that later calls can be tied to their task.
func (t *Throttle) response(resp *http.Response) error {
	op := resp.Request.Header.Get("X-Amz-Target")
	if t.cfg.HoldResponse != nil {
		body, _ := resp.Request.Context().Value(bodyKey{}).([]byte)
		t.cfg.HoldResponse(op, body, resp.StatusCode)
	}
	if refused, _ := resp.Request.Context().Value(refusedKey{}).([]string); len(refused) > 0 && resp.StatusCode == http.StatusOK {
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var out sendBatchResult
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		rec := httptest.NewRecorder()
		writeFailed(rec, refused, out)
		resp.Body = io.NopCloser(rec.Body)
		resp.ContentLength = int64(rec.Body.Len())
		resp.Header.Set("Content-Length", strconv.Itoa(rec.Body.Len()))
		return nil
	}
	if op != "AmazonSQS.ReceiveMessage" {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return err
	}
	var out struct {
		Messages []struct{ ReceiptHandle, Body string }
	}
	_ = json.Unmarshal(body, &out)
	stalled := len(out.Messages) > 0 && t.stall()
	t.mu.Lock()
	for _, m := range out.Messages {
		var tm struct{ ID, Function string }
		if json.Unmarshal([]byte(m.Body), &tm) != nil || tm.ID == "" || tm.Function == "" {
			continue // not a task message (an event)
		}
		t.deliveries[tm.ID]++
		t.handles[m.ReceiptHandle] = tm.ID
		if stalled {
			t.lapsed[tm.ID] = true
		}
	}
	t.mu.Unlock()
	if stalled {
		time.Sleep(t.cfg.Stall)
	}
	return nil
}
