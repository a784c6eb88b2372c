package lambdaedge

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// HTTP adapts h to the events of an API Gateway HTTP API with payload
// format 2.0; a Lambda function URL sends events of the same shape.
//
// The request gets the method, raw path and raw query string, the headers
// (cookies joined into one Cookie header), the body (decoded when
// isBase64Encoded), the Host from the headers or else the domain name,
// and requestContext.http.sourceIp as RemoteAddr (with port 0). Its
// context is the invocation's, with its deadline. The body arrives whole
// (Lambda caps it at 6 MB); a handler that limits bodies with
// http.MaxBytesReader limits them here in the same way.
//
// The handler's response is buffered: status (200 if none was written),
// headers (several values joined with ", "; Set-Cookie values go to the
// cookies list), and the body, as text when it is valid UTF-8 of a textual
// content type and base64-encoded otherwise. A missing Content-Type is
// sniffed as net/http does. Streaming responses and trailers are not
// supported.
func HTTP(h http.Handler) func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		r, err := newRequest(ctx, ev)
		if err != nil {
			// A malformed event is not the client's fault to report
			// through the handler; answer 400 without calling it.
			return events.APIGatewayV2HTTPResponse{
				StatusCode: http.StatusBadRequest,
				Headers:    map[string]string{"Content-Type": "text/plain; charset=utf-8"},
				Body:       err.Error() + "\n",
			}, nil
		}
		w := &responseRecorder{header: http.Header{}}
		h.ServeHTTP(w, r)
		return w.response(r.Method), nil
	}
}

func newRequest(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	method := ev.RequestContext.HTTP.Method
	if method == "" {
		return nil, fmt.Errorf("lambda event: no requestContext.http.method")
	}
	path := ev.RawPath
	if path == "" {
		path = "/"
	}
	requestURI := path
	if ev.RawQueryString != "" {
		requestURI += "?" + ev.RawQueryString
	}
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return nil, fmt.Errorf("lambda event: path %q: %w", requestURI, err)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, fmt.Errorf("lambda event: base64 body: %w", err)
		}
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("lambda event: %w", err)
	}
	r.URL = u
	r.RequestURI = requestURI
	for k, v := range ev.Headers {
		r.Header.Set(k, v)
	}
	if len(ev.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	r.Host = r.Header.Get("Host")
	if r.Host == "" {
		r.Host = ev.RequestContext.DomainName
	}
	r.Header.Del("Host")
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body = http.NoBody
	}
	if proto := ev.RequestContext.HTTP.Protocol; proto != "" {
		if major, minor, ok := http.ParseHTTPVersion(proto); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = proto, major, minor
		}
	}
	if ip := ev.RequestContext.HTTP.SourceIP; ip != "" {
		r.RemoteAddr = net.JoinHostPort(ip, "0")
	}
	return r, nil
}

// responseRecorder buffers a handler's response.
type responseRecorder struct {
	header      http.Header
	status      int
	body        bytes.Buffer
	wroteHeader bool
}

func (w *responseRecorder) Header() http.Header { return w.header }

func (w *responseRecorder) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		return // informational responses are not relayed
	}
	w.status, w.wroteHeader = status, true
}

func (w *responseRecorder) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.header.Get("Content-Type") == "" && w.body.Len() == 0 && len(p) > 0 && w.header.Get("Content-Encoding") == "" {
		w.header.Set("Content-Type", http.DetectContentType(p))
	}
	return w.body.Write(p)
}

// Flush implements http.Flusher; the response is sent whole at the end.
func (w *responseRecorder) Flush() {}

func (w *responseRecorder) response(method string) events.APIGatewayV2HTTPResponse {
	resp := events.APIGatewayV2HTTPResponse{StatusCode: w.status, Headers: map[string]string{}}
	if !w.wroteHeader {
		resp.StatusCode = http.StatusOK
	}
	for k, vs := range w.header {
		if len(vs) == 0 {
			continue
		}
		if k == "Set-Cookie" {
			resp.Cookies = append(resp.Cookies, vs...)
			continue
		}
		resp.Headers[k] = strings.Join(vs, ", ")
	}
	if method == http.MethodHead {
		return resp
	}
	body := w.body.Bytes()
	if len(body) > 0 {
		if _, ok := resp.Headers["Content-Length"]; !ok {
			resp.Headers["Content-Length"] = strconv.Itoa(len(body))
		}
	}
	if isText(w.header.Get("Content-Type"), w.header.Get("Content-Encoding"), body) {
		resp.Body = string(body)
	} else {
		resp.Body = base64.StdEncoding.EncodeToString(body)
		resp.IsBase64Encoded = true
	}
	return resp
}

// isText reports whether body can travel as a JSON string unchanged: valid
// UTF-8, not content-encoded, and of a textual media type (or empty).
func isText(contentType, contentEncoding string, body []byte) bool {
	if len(body) == 0 {
		return true
	}
	if contentEncoding != "" && contentEncoding != "identity" || !utf8.Valid(body) {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"),
		mt == "application/json", mt == "application/xml",
		mt == "application/javascript", mt == "application/x-www-form-urlencoded",
		mt == "application/x-ndjson", mt == "application/yaml":
		return true
	}
	return false
}
