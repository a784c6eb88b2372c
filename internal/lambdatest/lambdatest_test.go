package lambdatest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/droverhq/drover/internal/lambdatest"
)

func httpEvent(t *testing.T, method, path, body string) []byte {
	t.Helper()
	b, err := json.Marshal(events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "$default",
		RawPath:  path,
		Headers:  map[string]string{"content-type": "text/plain", "host": "fn.lambda-url.us-east-1.on.aws"},
		Body:     body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "192.0.2.1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type echoed struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Body        string `json:"body"`
	Greeting    string `json:"greeting"`
	FunctionARN string `json:"function_arn"`
	HasDeadline bool   `json:"has_deadline"`
}

func decode(t *testing.T, r lambdatest.Response) (events.APIGatewayV2HTTPResponse, echoed) {
	t.Helper()
	if r.Failed() {
		t.Fatalf("invocation %s failed: %s %s", r.RequestID, r.ErrorType, r.ErrorPayload)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(r.Payload, &resp); err != nil {
		t.Fatalf("response %q: %v", r.Payload, err)
	}
	var e echoed
	if err := json.Unmarshal([]byte(resp.Body), &e); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return resp, e
}

func TestRun(t *testing.T) {
	bin := lambdatest.Build(t, "./testdata/echofn")
	t.Run("events", func(t *testing.T) { testEvents(t, bin) })
	t.Run("init failure", func(t *testing.T) { testInitFailure(t, bin) })
	t.Run("init error", func(t *testing.T) {
		resps := lambdatest.Run(t, bin, []string{"ECHOFN_INIT_ERROR=bad config"}, httpEvent(t, "GET", "/", ""))
		if r := resps[0]; !r.InitError || r.ErrorType != "Runtime.ConfigError" || !strings.Contains(string(r.ErrorPayload), "bad config") {
			t.Errorf("got %+v (%s); want the init error", r, r.ErrorPayload)
		}
	})
	t.Run("no events", func(t *testing.T) {
		if got := lambdatest.Run(t, bin, nil); len(got) != 0 {
			t.Errorf("got %v", got)
		}
	})
}

func testEvents(t *testing.T, bin string) {
	resps := lambdatest.Run(t, bin, []string{"ECHOFN_GREETING=hi"},
		httpEvent(t, "GET", "/one", ""),
		httpEvent(t, "POST", "/two", "payload"),
		httpEvent(t, "GET", "/panic", ""), // the process exits after reporting it
		httpEvent(t, "GET", "/never", ""),
	)
	if len(resps) != 4 {
		t.Fatalf("%d responses, want 4", len(resps))
	}
	for i, want := range []echoed{
		{Method: "GET", Path: "/one", Greeting: "hi", FunctionARN: lambdatest.FunctionARN, HasDeadline: true},
		{Method: "POST", Path: "/two", Body: "payload", Greeting: "hi", FunctionARN: lambdatest.FunctionARN, HasDeadline: true},
	} {
		resp, got := decode(t, resps[i])
		if resp.StatusCode != 200 || got != want {
			t.Errorf("event %d: status %d, echoed %+v; want 200, %+v", i, resp.StatusCode, got, want)
		}
	}
	if r := resps[2]; !r.Failed() || r.ErrorType == lambdatest.ErrorTypeExit || !strings.Contains(string(r.ErrorPayload), "asked to panic") {
		t.Errorf("panic: %+v; want the function's own error report", r)
	}
	if r := resps[3]; r.ErrorType != lambdatest.ErrorTypeExit || r.RequestID != "" {
		t.Errorf("after the exit: %+v; want %s, never served", r, lambdatest.ErrorTypeExit)
	}
}

func testInitFailure(t *testing.T, bin string) {
	resps := lambdatest.Run(t, bin, []string{"ECHOFN_FAIL_INIT=1"}, httpEvent(t, "GET", "/", ""))
	if r := resps[0]; r.ErrorType != lambdatest.ErrorTypeExit || !strings.Contains(string(r.ErrorPayload), "ECHOFN_FAIL_INIT is set") {
		t.Errorf("got %+v (%s); want %s with the process's output", r, r.ErrorPayload, lambdatest.ErrorTypeExit)
	}
}
