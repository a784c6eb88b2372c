package lambdaedge_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/droverhq/drover/internal/lambdaedge"
)

// addGolden seeds f with the golden events in testdata/ (more seeds are
// in testdata/fuzz/).
func addGolden(f *testing.F, files ...string) {
	for _, file := range files {
		raw, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
}

// FuzzSQSEvent feeds arbitrary SQS events (whoever can send to the queue
// controls bodies and attributes) through the SQS adapter and
// Deliveries, failing every other record: nothing panics; every record
// becomes one delivery with the record's body (base64-decoded when so
// marked); the failures reported are exactly the records failed, each
// once, every one in the batch; and the handler errs only when the whole
// batch failed.
func FuzzSQSEvent(f *testing.F) {
	addGolden(f, "sqs-batch.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev events.SQSEvent
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		var nacked map[string]bool
		resp, err := lambdaedge.SQS(func(_ context.Context, recs []lambdaedge.Record) []string {
			if len(recs) != len(ev.Records) {
				t.Fatalf("%d records for a batch of %d", len(recs), len(ev.Records))
			}
			for i, r := range recs {
				m := ev.Records[i]
				if r.MessageID != m.MessageId || r.ReceiptHandle != m.ReceiptHandle {
					t.Fatalf("record %d: id %q handle %q, want %q %q", i, r.MessageID, r.ReceiptHandle, m.MessageId, m.ReceiptHandle)
				}
				if want := wantBody(m); r.Body != want {
					t.Fatalf("record %d: body %q, want %q", i, r.Body, want)
				}
				if r.QueueURL != "" {
					if u, err := url.Parse(r.QueueURL); err != nil || u.Scheme != "https" || u.Host == "" {
						t.Fatalf("record %d: queue URL %q from ARN %q", i, r.QueueURL, m.EventSourceARN)
					}
				}
			}
			ds, failed := lambdaedge.Deliveries(recs, nil)
			if len(ds) != len(recs) {
				t.Fatalf("%d deliveries for %d records", len(ds), len(recs))
			}
			nacked = map[string]bool{}
			for i, d := range ds {
				if string(d.Body) != recs[i].Body || d.ID != recs[i].MessageID || d.Attempt() < 1 {
					t.Fatalf("delivery %d: id %q body %q attempt %d, from %+v", i, d.ID, d.Body, d.Attempt(), recs[i])
				}
				if i%2 == 1 {
					d.Nack()
					nacked[d.ID] = true
				} else {
					d.Ack()
				}
			}
			var want []string
			for _, r := range recs {
				if nacked[r.MessageID] {
					want = append(want, r.MessageID)
				}
			}
			got := failed()
			if !slices.Equal(got, want) {
				t.Fatalf("failed() = %q, want %q", got, want)
			}
			return got
		})(context.Background(), ev)
		if len(ev.Records) == 0 {
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("empty batch: %v, %v", resp, err)
			}
			return
		}
		reported := map[string]bool{}
		for _, f := range resp.BatchItemFailures {
			if reported[f.ItemIdentifier] || !nacked[f.ItemIdentifier] {
				t.Fatalf("failure %q reported twice or never failed; failed %v", f.ItemIdentifier, nacked)
			}
			reported[f.ItemIdentifier] = true
		}
		if len(reported) != len(nacked) {
			t.Fatalf("reported %v, failed %v", reported, nacked)
		}
		if (err != nil) != (len(resp.BatchItemFailures) == len(ev.Records)) {
			t.Fatalf("err = %v with %d of %d records failed", err, len(resp.BatchItemFailures), len(ev.Records))
		}
	})
}

// wantBody is m's body as a delivery must carry it: base64-decoded when
// gocloud's awssqs topic marked it so and it decodes.
func wantBody(m events.SQSMessage) string {
	if a, ok := m.MessageAttributes["base64encoded"]; ok && a.StringValue != nil {
		if b, err := base64.StdEncoding.DecodeString(m.Body); err == nil {
			return string(b)
		}
	}
	return m.Body
}

// FuzzHTTPEvent feeds arbitrary API Gateway / function URL events (a
// client controls method, path, query, headers, cookies and body)
// through the HTTP adapter to a handler that echoes the body with the
// client's Content-Type: nothing panics; a malformed event is answered
// 400 without calling the handler; otherwise the handler sees the
// event's method and body (base64-decoded when so marked), and the
// response carries exactly the bytes written, as a JSON-safe UTF-8 string
// or else base64-encoded, and encodes as JSON.
func FuzzHTTPEvent(f *testing.F) {
	addGolden(f, "apigw-v2-request.json", "function-url-request.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev events.APIGatewayV2HTTPRequest
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		called := false
		var wrote []byte
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called = true
			if r.Method != ev.RequestContext.HTTP.Method {
				t.Fatalf("method %q, want %q", r.Method, ev.RequestContext.HTTP.Method)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			want := []byte(ev.Body)
			if ev.IsBase64Encoded {
				want, _ = base64.StdEncoding.DecodeString(ev.Body)
			}
			if !bytes.Equal(body, want) || r.ContentLength != int64(len(want)) {
				t.Fatalf("handler read %q (length %d), want %q", body, r.ContentLength, want)
			}
			if ct := r.Header.Get("Content-Type"); ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			wrote = body
			w.Write(body)
		})
		resp, err := lambdaedge.HTTP(h)(context.Background(), ev)
		if err != nil {
			t.Fatalf("HTTP adapter returned an error: %v", err)
		}
		if !called {
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("handler not called, status %d, want 400", resp.StatusCode)
			}
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		if ev.RequestContext.HTTP.Method == http.MethodHead {
			return
		}
		got := []byte(resp.Body)
		if resp.IsBase64Encoded {
			if got, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
				t.Fatalf("response body not base64: %v", err)
			}
		} else if !utf8.ValidString(resp.Body) {
			t.Fatalf("response body %q sent as text is not UTF-8", resp.Body)
		}
		if !bytes.Equal(got, wrote) {
			t.Fatalf("response body %q, handler wrote %q", got, wrote)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
	})
}
