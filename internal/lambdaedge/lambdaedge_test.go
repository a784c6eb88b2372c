package lambdaedge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/droverhq/drover/internal/lambdaedge"
)

var update = flag.Bool("update", false, "rewrite the golden response files in testdata/")

// roundTrip decodes file strictly into a new T, encodes it and decodes it
// again, and fails unless both decodings are equal: the golden event has
// no field the events types drop.
func roundTrip[T any](t *testing.T, file string) T {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var first, second T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&first); err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	enc, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(enc, &second); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("%s changed in a round trip:\n%+v\n%+v", file, first, second)
	}
	return first
}

// golden compares got, as indented JSON, with testdata/file, or writes it
// there with -update.
func golden(t *testing.T, file string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs (run with -update after checking):\ngot:\n%s\nwant:\n%s", file, b, want)
	}
}

// echoHandler answers with what it saw of the request.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<10))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var cookies []string
	for _, c := range r.Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	_, deadline := r.Context().Deadline()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Set-Cookie", "seen=1; Path=/")
	w.Header().Add("Set-Cookie", "again=2; Path=/")
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Authorization")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]any{
		"method":         r.Method,
		"path":           r.URL.Path,
		"raw_query":      r.URL.RawQuery,
		"tags":           r.URL.Query()["tag"],
		"request_uri":    r.RequestURI,
		"host":           r.Host,
		"remote_addr":    r.RemoteAddr,
		"proto":          r.Proto,
		"content_length": r.ContentLength,
		"content_type":   r.Header.Get("Content-Type"),
		"authorization":  r.Header.Get("Authorization"),
		"cookies":        cookies,
		"body":           string(body),
		"has_deadline":   deadline,
	})
})

func TestHTTPGolden(t *testing.T) {
	for _, file := range []string{"function-url-request.json", "apigw-v2-request.json"} {
		t.Run(file, func(t *testing.T) {
			ev := roundTrip[events.APIGatewayV2HTTPRequest](t, file)
			resp, err := lambdaedge.HTTP(echoHandler)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(file, "-request.json")+"-response.json", resp)
		})
	}
}

func TestHTTPRequestMapping(t *testing.T) {
	ev := roundTrip[events.APIGatewayV2HTTPRequest](t, "function-url-request.json")
	var got *http.Request
	var body []byte
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
	})
	if _, err := lambdaedge.HTTP(h)(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"method", got.Method, "POST"},
		{"path", got.URL.Path, "/v1/tasks"},
		{"query", got.URL.RawQuery, "wait=30s&tag=a&tag=b"},
		{"host", got.Host, "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"},
		{"remote", got.RemoteAddr, "203.0.113.7:0"},
		{"cookie", got.Header.Get("Cookie"), "session=abc123; theme=dark"},
		{"authorization", got.Header.Get("Authorization"), "Bearer dev-key"},
		{"body", string(body), `{"function":"echo","args":{"msg":"héllo"}}`},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if got.ContentLength != 43 {
		t.Errorf("ContentLength = %d, want 43", got.ContentLength)
	}
}

func TestHTTPResponses(t *testing.T) {
	base := events.APIGatewayV2HTTPRequest{
		RawPath: "/x",
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", SourceIP: "2001:db8::1"},
		},
	}
	for _, tc := range []struct {
		name       string
		mutate     func(*events.APIGatewayV2HTTPRequest)
		handler    http.HandlerFunc
		wantStatus int
		wantBody   string
		wantB64    bool
		wantHeader map[string]string
	}{
		{
			name:       "default status and sniffed type",
			handler:    func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
			wantStatus: 200, wantBody: "hello",
			wantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8"},
		},
		{
			name:       "nothing written",
			handler:    func(w http.ResponseWriter, r *http.Request) {},
			wantStatus: 200, wantBody: "",
		},
		{
			name: "problem json",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"status":404}`)
			},
			wantStatus: 404, wantBody: `{"status":404}`,
		},
		{
			name: "binary",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Write([]byte{0, 0xff, 0x10})
			},
			wantStatus: 200, wantBody: "AP8Q", wantB64: true,
		},
		{
			name: "invalid utf-8 text",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Write([]byte{0xbd, 0xb2})
			},
			wantStatus: 200, wantBody: "vbI=", wantB64: true,
		},
		{
			name: "gzip",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", "gzip")
				io.WriteString(w, "ab")
			},
			wantStatus: 200, wantBody: "YWI=", wantB64: true,
		},
		{
			name:   "head",
			mutate: func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.HTTP.Method = "HEAD" },
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hidden")
			},
			wantStatus: 200, wantBody: "",
		},
		{
			name: "body over the handler's limit",
			mutate: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.RequestContext.HTTP.Method = "POST"
				ev.Body = strings.Repeat("x", 2<<10)
			},
			handler:    echoHandler,
			wantStatus: 413, wantBody: "too large\n",
		},
		{
			name: "bad base64 body",
			mutate: func(ev *events.APIGatewayV2HTTPRequest) {
				ev.Body, ev.IsBase64Encoded = "!!", true
			},
			handler:    func(w http.ResponseWriter, r *http.Request) { t.Error("handler called") },
			wantStatus: 400,
		},
		{
			name: "ipv6 source",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.RemoteAddr)
			},
			wantStatus: 200, wantBody: "[2001:db8::1]:0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := base
			if tc.mutate != nil {
				tc.mutate(&ev)
			}
			resp, err := lambdaedge.HTTP(tc.handler)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus != 400 && (resp.Body != tc.wantBody || resp.IsBase64Encoded != tc.wantB64) {
				t.Errorf("body %q base64=%v, want %q base64=%v", resp.Body, resp.IsBase64Encoded, tc.wantBody, tc.wantB64)
			}
			for k, v := range tc.wantHeader {
				if resp.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, resp.Headers[k], v)
				}
			}
		})
	}
}

func TestSQSGolden(t *testing.T) {
	ev := roundTrip[events.SQSEvent](t, "sqs-batch.json")
	var got []lambdaedge.Record
	resp, err := lambdaedge.SQS(func(ctx context.Context, recs []lambdaedge.Record) []string {
		got = recs
		return []string{recs[1].MessageID}
	})(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sqs-batch-records.json", got)
	golden(t, "sqs-batch-response.json", resp)

	// Spot checks, so the golden file is read with intent.
	if got[0].QueueURL != "https://sqs.us-east-1.amazonaws.com/123456789012/drover-tasks" {
		t.Errorf("QueueURL = %q", got[0].QueueURL)
	}
	if got[1].ReceiveCount != 3 || got[1].Attributes["trace parent"] == "" || got[1].Attributes["drover-delay-ms"] != "2000" {
		t.Errorf("record 1 = %+v", got[1])
	}
	if got[2].Body != "\x00\xff\x10\xff" || len(got[2].Attributes) != 0 {
		t.Errorf("record 2 body %q attributes %v; want decoded body, no attributes", got[2].Body, got[2].Attributes)
	}
}

func TestSQSFailures(t *testing.T) {
	ev := roundTrip[events.SQSEvent](t, "sqs-batch.json")
	ids := func(resp events.SQSEventResponse) []string {
		var out []string
		for _, f := range resp.BatchItemFailures {
			out = append(out, f.ItemIdentifier)
		}
		return out
	}
	all := []string{ev.Records[0].MessageId, ev.Records[1].MessageId, ev.Records[2].MessageId}
	for _, tc := range []struct {
		name    string
		failed  []string
		want    []string
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"one", all[2:], all[2:], false},
		{"duplicates", []string{all[0], all[0]}, all[:1], false},
		{"all", all, all, true},
		{"unknown id", []string{"nope"}, all, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := lambdaedge.SQS(func(context.Context, []lambdaedge.Record) []string {
				return tc.failed
			})(context.Background(), ev)
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := ids(resp); !slices.Equal(got, tc.want) {
				t.Errorf("failures %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("empty batch", func(t *testing.T) {
		resp, err := lambdaedge.SQS(func(context.Context, []lambdaedge.Record) []string {
			t.Error("process called on an empty batch")
			return nil
		})(context.Background(), events.SQSEvent{})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Errorf("got %v, %v", resp, err)
		}
	})
}

func TestQueueURLFromARN(t *testing.T) {
	for _, tc := range []struct{ arn, want string }{
		{"arn:aws:sqs:us-east-1:123456789012:drover-tasks", "https://sqs.us-east-1.amazonaws.com/123456789012/drover-tasks"},
		{"arn:aws-cn:sqs:cn-north-1:123456789012:q", "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q"},
		{"arn:aws:sqs:us-east-1:123456789012:q.fifo", "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"},
		{"arn:aws:sns:us-east-1:123456789012:t", ""},
		{"arn:aws:sqs:us-east-1::q", ""},
		{"", ""},
	} {
		got, ok := lambdaedge.QueueURLFromARN(tc.arn)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("QueueURLFromARN(%q) = %q, %v; want %q", tc.arn, got, ok, tc.want)
		}
	}
}

func TestEnabled(t *testing.T) {
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	if lambdaedge.Enabled() {
		t.Error("Enabled() with no AWS_LAMBDA_RUNTIME_API")
	}
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
	if !lambdaedge.Enabled() {
		t.Error("not Enabled() with AWS_LAMBDA_RUNTIME_API set")
	}
}
