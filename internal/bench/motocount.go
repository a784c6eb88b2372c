package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
)

// OpCount is what one AWS operation cost in a counted span.
type OpCount struct {
	// Requests is how many were sent.
	Requests int64 `json:"requests"`
	// Entries is how many items the requests carried in all: batch
	// entries (SQS *Batch), keys (BatchGetItem), put/delete requests
	// (BatchWriteItem); one for single-item calls.
	Entries int64 `json:"entries"`
	// Received is the messages ReceiveMessage returned, and Empty the
	// ReceiveMessage calls that returned none.
	Received int64 `json:"received,omitempty"`
	Empty    int64 `json:"empty,omitempty"`
}

// Requests is a per-operation count of the requests one span of the
// bench sent to the AWS endpoint, and what they are per task.
type Requests struct {
	// Tasks is what the counts are divided by: Drover's completed tasks,
	// or a raw run's messages.
	Tasks int                 `json:"tasks"`
	Ops   map[string]*OpCount `json:"ops"`
}

// Total is the requests of all operations.
func (r *Requests) Total() int64 {
	var n int64
	for _, c := range r.Ops {
		n += c.Requests
	}
	return n
}

// Names returns the operations, most requests first.
func (r *Requests) Names() []string {
	var names []string
	for k := range r.Ops {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := r.Ops[b].Requests - r.Ops[a].Requests; d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return names
}

// reqCounter is a reverse proxy in front of the AWS endpoint that counts
// requests by operation. The SDK clients that gocloud builds load the
// default configuration themselves, so nothing can be injected into them
// but the endpoint: the bench points AWS_ENDPOINT_URL here. It reads the
// operation from X-Amz-Target (SQS and DynamoDB speak AWS JSON), the
// Action parameter (query protocol) or, for S3, the method.
type reqCounter struct {
	srv    *http.Server
	url    string
	target string

	mu  sync.Mutex
	ops map[string]*OpCount
}

// startCounting puts a counter in front of AWS_ENDPOINT_URL for the
// rest of the run: every SDK client built from the default configuration
// after it (gocloud's included) goes through it.
func startCounting(o *Options) (stop func(), err error) {
	target := os.Getenv("AWS_ENDPOINT_URL")
	if target == "" {
		return nil, errors.New("counting requests needs AWS_ENDPOINT_URL (an emulator's endpoint)")
	}
	c, err := startCounter(target)
	if err != nil {
		return nil, err
	}
	os.Setenv("AWS_ENDPOINT_URL", c.url)
	o.counter, o.count0 = c, c.snapshot()
	return func() {
		os.Setenv("AWS_ENDPOINT_URL", target)
		c.close()
	}, nil
}

// startCounter starts a counting proxy to target.
func startCounter(target string) (*reqCounter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("request counter: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("request counter: %w", err)
	}
	c := &reqCounter{url: "http://" + l.Addr().String(), target: target, ops: map[string]*OpCount{}}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport:      &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
		ModifyResponse: c.response,
		// Errors reach the client as 502s; the log would only repeat
		// the long polls cancelled at the end of each raw run.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	c.srv = &http.Server{Handler: c.handler(rp)}
	go func() { _ = c.srv.Serve(l) }()
	return c, nil
}

func (c *reqCounter) close() { _ = c.srv.Close() }

func opName(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		svc, op, _ := strings.Cut(t, ".")
		switch {
		case strings.HasPrefix(svc, "AmazonSQS"):
			return "sqs:" + op
		case strings.HasPrefix(svc, "DynamoDB"):
			return "dynamodb:" + op
		}
		return t
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	return "s3:" + r.Method
}

func (c *reqCounter) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := opName(r)
		entries := int64(1)
		if strings.Contains(op, "Batch") {
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err == nil {
				entries = batchEntries(b)
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		c.mu.Lock()
		oc := c.ops[op]
		if oc == nil {
			oc = &OpCount{}
			c.ops[op] = oc
		}
		oc.Requests++
		oc.Entries += entries
		c.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// batchEntries counts the items of a batch request body.
func batchEntries(b []byte) int64 {
	var v struct {
		Entries      []json.RawMessage `json:"Entries"`
		RequestItems map[string]json.RawMessage
	}
	if json.Unmarshal(b, &v) != nil {
		return 1
	}
	if v.Entries != nil {
		return int64(len(v.Entries))
	}
	var n int64
	for _, items := range v.RequestItems {
		var ka struct{ Keys []json.RawMessage } // BatchGetItem
		if json.Unmarshal(items, &ka) == nil && ka.Keys != nil {
			n += int64(len(ka.Keys))
			continue
		}
		var ws []json.RawMessage // BatchWriteItem
		if json.Unmarshal(items, &ws) == nil {
			n += int64(len(ws))
		}
	}
	return n
}

// response counts the messages a ReceiveMessage returned.
func (c *reqCounter) response(resp *http.Response) error {
	if resp.Request == nil || opName(resp.Request) != "sqs:ReceiveMessage" || resp.StatusCode != http.StatusOK {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	var v struct{ Messages []json.RawMessage }
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	oc := c.ops["sqs:ReceiveMessage"]
	oc.Received += int64(len(v.Messages))
	if len(v.Messages) == 0 {
		oc.Empty++
	}
	return nil
}

// snapshot returns the counts so far.
func (c *reqCounter) snapshot() map[string]OpCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]OpCount, len(c.ops))
	for k, v := range c.ops {
		out[k] = *v
	}
	return out
}

// since returns the counts after snapshot a, per task of n.
func (c *reqCounter) since(a map[string]OpCount, n int) *Requests {
	r := &Requests{Tasks: n, Ops: map[string]*OpCount{}}
	for k, v := range c.snapshot() {
		p := a[k]
		d := &OpCount{Requests: v.Requests - p.Requests, Entries: v.Entries - p.Entries, Received: v.Received - p.Received, Empty: v.Empty - p.Empty}
		if d.Requests > 0 {
			r.Ops[k] = d
		}
	}
	return r
}
