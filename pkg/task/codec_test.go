package task

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests below hold the hand-written codec of wire.go to encoding/json:
// the reference functions are the codec as it was before, encoding/json
// alone, followed by the same checks.

func jsonEncodeMessage(m *Message) ([]byte, error) {
	m.V = WireVersion
	return json.Marshal(m)
}

func jsonEncodeEvent(e *Event) ([]byte, error) {
	return json.Marshal(envelope{V: WireVersion, Event: e})
}

func jsonEncodeRunner(r *RunnerInfo) ([]byte, error) {
	return json.Marshal(envelope{V: WireVersion, Runner: r})
}

func jsonDecodeMessage(b []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: task message: %v", ErrUndecodable, err)
	}
	return checkMessage(&m)
}

func jsonDecodeEvent(b []byte) (*Event, *RunnerInfo, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, nil, fmt.Errorf("%w: event message: %v", ErrUndecodable, err)
	}
	return checkEnvelope(env)
}

// sameError fails t unless err and want are both nil or have the same
// text.
func sameError(t *testing.T, what string, err, want error) {
	t.Helper()
	if (err == nil) != (want == nil) || err != nil && err.Error() != want.Error() {
		t.Fatalf("%s: error %v, encoding/json gives %v", what, err, want)
	}
}

// checkDecodeMessage compares DecodeMessage and its fast path with
// encoding/json on b, and returns whether the fast path took it.
func checkDecodeMessage(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	m, err := DecodeMessage(b)
	want, wantErr := jsonDecodeMessage(b)
	sameError(t, "DecodeMessage", err, wantErr)
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("DecodeMessage: %+v, encoding/json gives %+v", m, want)
	}
	var fm Message
	if !decodeMessage(b, &fm) {
		return false
	}
	var jm Message
	if err := json.Unmarshal(b, &jm); err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects: %v", err)
	}
	if !reflect.DeepEqual(fm, jm) {
		t.Fatalf("fast path: %+v, encoding/json gives %+v", fm, jm)
	}
	return true
}

// checkDecodeEvent is checkDecodeMessage for DecodeEvent.
func checkDecodeEvent(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	e, r, err := DecodeEvent(b)
	we, wr, wantErr := jsonDecodeEvent(b)
	sameError(t, "DecodeEvent", err, wantErr)
	if !reflect.DeepEqual(e, we) || !reflect.DeepEqual(r, wr) {
		t.Fatalf("DecodeEvent: %+v %+v, encoding/json gives %+v %+v", e, r, we, wr)
	}
	fe, ok := decodeEnvelope(b)
	if !ok {
		return false
	}
	var je envelope
	if err := json.Unmarshal(b, &je); err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects: %v", err)
	}
	if !reflect.DeepEqual(fe, je) {
		t.Fatalf("fast path: %+v %+v, encoding/json gives %+v %+v", fe, fe.Event, je, je.Event)
	}
	return true
}

// checkEncode compares an encoder's output with encoding/json's.
func checkEncode(t *testing.T, got []byte, err error, want []byte, wantErr error) {
	t.Helper()
	sameError(t, "encode", err, wantErr)
	if string(got) != string(want) {
		t.Fatalf("encoded\n%s\nencoding/json gives\n%s", got, want)
	}
}

// checkEncodeMessage compares EncodeMessage with encoding/json on m, decodes
// what it gives, and returns whether the fast path took m.
func checkEncodeMessage(t *testing.T, m *Message) (fast bool) {
	t.Helper()
	m2 := *m
	want, wantErr := jsonEncodeMessage(&m2)
	got, err := EncodeMessage(m)
	checkEncode(t, got, err, want, wantErr)
	_, fast = appendMessage(m)
	if err == nil {
		checkDecodeMessage(t, got)
	}
	return fast
}

// checkEncodeEvent is checkEncodeMessage for EncodeEvent.
func checkEncodeEvent(t *testing.T, e *Event) (fast bool) {
	t.Helper()
	want, wantErr := jsonEncodeEvent(e)
	got, err := EncodeEvent(e)
	checkEncode(t, got, err, want, wantErr)
	_, fast = appendEvent(e)
	if err == nil {
		checkDecodeEvent(t, got)
	}
	return fast
}

// checkEncodeRunner is checkEncodeMessage for EncodeRunner.
func checkEncodeRunner(t *testing.T, r *RunnerInfo) (fast bool) {
	t.Helper()
	want, wantErr := jsonEncodeRunner(r)
	got, err := EncodeRunner(r)
	checkEncode(t, got, err, want, wantErr)
	_, fast = appendRunner(r)
	if err == nil {
		checkDecodeEvent(t, got)
	}
	return fast
}

const wireTestID = "01KF0000000000000000000000"

// messageCases are task messages, well-formed or not; fast says whether
// the hand-written decoder reads them itself rather than leave them to
// encoding/json. They also seed FuzzDecodeMessage.
var messageCases = []struct {
	name string
	in   string
	fast bool
}{
	{"typical", `{"v":1,"id":"` + wireTestID + `","function":"echo","queue":"default","args":{"n":1},"timeout_ms":300000,"max_attempts":3,"created_at":"2026-01-02T03:04:05.123456789Z"}`, true},
	{"claim check", `{"v":1,"id":"` + wireTestID + `","function":"echo","queue":"default","args_ref":"payloads/` + wireTestID + `","timeout_ms":1000,"max_attempts":3,"created_at":"2026-01-02T03:04:05Z"}`, true},
	{"trace context", `{"v":1,"id":"` + wireTestID + `","function":"echo","queue":"default","args":{"n":1},"timeout_ms":300000,"max_attempts":3,"created_at":"2026-01-02T03:04:05Z","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}`, true},
	{"trace context first, null state", `{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":null,"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1}`, true},
	{"traceparent not a string", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1,"traceparent":1}`, false},
	{"traceparent key case", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1,"TraceParent":"x"}`, false},
	{"reordered, spaced", " \t\r\n{ \"max_attempts\" : 3 ,\n\"created_at\":\"2026-01-02T03:04:05.5+05:30\", \"timeout_ms\":1,\"function\":\"echo\",\"id\":\"" + wireTestID + "\",\"v\":1 }\n ", true},
	{"minimal", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1}`, true},
	{"unknown fields", `{"v":1,"extra":{"a":[1,-2.5e+3,0.0,1E-2,true,false,null,"x\u00e9\"",{}],"b":[]},"id":"` + wireTestID + `","function":"f","zzz":"","timeout_ms":1,"max_attempts":1,"n":-0}`, true},
	{"escapes", `{"v":1,"id":"` + wireTestID + `","function":"ec\u0068o \"q\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00 \u2028 \u0000","timeout_ms":1,"max_attempts":1}`, true},
	{"lone surrogates", `{"v":1,"id":"` + wireTestID + `","function":"\ud800 \udc00x \ud800\u0041 \udbff\udfff \ud800\ud800\udc00 \ud83d","timeout_ms":1,"max_attempts":1}`, true},
	{"utf-8", `{"v":1,"id":"` + wireTestID + `","function":"échø 😀 ` + "\u2029" + `","queue":"очередь","timeout_ms":1,"max_attempts":1}`, true},
	{"invalid utf-8", "{\"v\":1,\"id\":\"" + wireTestID + "\",\"function\":\"ech\xff\xc3(\xed\xa0\x80\xf0\x9f\x98\",\"queue\":\"\xe2\x80\",\"timeout_ms\":1,\"max_attempts\":1}", true},
	{"invalid utf-8 in key", "{\"v\":1,\"\xff\":1,\"id\":\"" + wireTestID + "\",\"function\":\"f\",\"timeout_ms\":1,\"max_attempts\":1}", true},
	{"nulls", `{"v":1,"id":"` + wireTestID + `","function":"f","queue":null,"args":null,"args_ref":null,"timeout_ms":1,"max_attempts":1,"created_at":null}`, true},
	{"duplicate keys", `{"v":2,"v":1,"id":"x","id":"` + wireTestID + `","function":"a","function":"b","function":null,"args":[1],"args":null,"created_at":"2026-01-02T03:04:05Z","created_at":null,"timeout_ms":1,"max_attempts":1}`, true},
	{"args kept verbatim", `{"v":1,"id":"` + wireTestID + `","function":"f","args": { "a" : [1, 2], "h": "<&>\u2028` + "\u2028" + `" } ,"timeout_ms":1,"max_attempts":1}`, true},
	{"args string", `{"v":1,"id":"` + wireTestID + `","function":"f","args":"\ud800","timeout_ms":1,"max_attempts":1}`, true},
	{"args deep", `{"v":1,"id":"` + wireTestID + `","function":"f","args":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `,"timeout_ms":1,"max_attempts":1}`, true},
	{"args deeper", `{"v":1,"id":"` + wireTestID + `","function":"f","args":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `,"timeout_ms":1,"max_attempts":1}`, false},
	{"args too deep", `{"v":1,"id":"` + wireTestID + `","function":"f","args":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `,"timeout_ms":1,"max_attempts":1}`, false},
	{"args too deep objects", `{"v":1,"id":"` + wireTestID + `","function":"f","args":` + strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001) + `,"timeout_ms":1,"max_attempts":1}`, false},
	{"args not json", `{"v":1,"id":"` + wireTestID + `","function":"echo","args":nope,"timeout_ms":1,"max_attempts":1}`, false},
	{"args bad escape", `{"v":1,"id":"` + wireTestID + `","function":"echo","args":"\x","timeout_ms":1,"max_attempts":1}`, false},
	{"args control character", "{\"v\":1,\"id\":\"" + wireTestID + "\",\"function\":\"echo\",\"args\":\"\x01\",\"timeout_ms\":1,\"max_attempts\":1}", false},
	{"args bad numbers", `{"v":1,"id":"` + wireTestID + `","function":"echo","args":[01],"timeout_ms":1,"max_attempts":1}`, false},
	{"args bad fraction", `{"v":1,"id":"` + wireTestID + `","function":"echo","args":1.,"timeout_ms":1,"max_attempts":1}`, false},
	{"args bad exponent", `{"v":1,"id":"` + wireTestID + `","function":"echo","args":1e+,"timeout_ms":1,"max_attempts":1}`, false},
	{"args truncated", `{"v":1,"id":"` + wireTestID + `","function":"echo","args":{"a":`, false},
	{"escaped key", `{"v":1,"\u0069d":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1}`, false},
	{"key case", `{"V":1,"ID":"` + wireTestID + `","Function":"f","timeout_ms":1,"max_attempts":1}`, false},
	{"key folds to args", `{"v":1,"id":"` + wireTestID + `","function":"f","argſ":[1],"timeout_ms":1,"max_attempts":1}`, false},
	{"float", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1.0,"max_attempts":1}`, false},
	{"exponent", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1e3,"max_attempts":1}`, false},
	{"negative", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":-5,"max_attempts":1}`, true},
	{"18 digits", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":999999999999999999,"max_attempts":-999999999999999999}`, true},
	{"19 digits", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":9223372036854775807,"max_attempts":1}`, false},
	{"overflow", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":9223372036854775808}`, false},
	{"huge numbers", `{"v":1e400,"id":"` + wireTestID + `","function":"echo","timeout_ms":99999999999999999999,"max_attempts":1}`, false},
	{"leading zero", `{"v":01,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1}`, false},
	{"number as string", `{"v":"1","id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1}`, false},
	{"string as number", `{"v":1,"id":7,"function":"f","timeout_ms":1,"max_attempts":1}`, false},
	{"bool", `{"v":true}`, false},
	{"bad time", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1,"created_at":"2026-13-01T00:00:00Z"}`, false},
	{"time escaped", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1,"created_at":"2026-01-02T03:04:05\u005a"}`, false},
	{"time number", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1,"created_at":0}`, false},
	{"time offset", `{"v":1,"id":"` + wireTestID + `","function":"f","timeout_ms":1,"max_attempts":1,"created_at":"0000-01-01T00:00:00-23:59"}`, true},
	{"trailing garbage", `{"v":1}x`, false},
	{"trailing comma", `{"v":1,}`, false},
	{"two objects", `{"v":1}{"v":1}`, false},
	{"missing colon", `{"v" 1}`, false},
	{"null literal", `nul`, false},
	{"top-level null", `null`, false},
	{"array", `[]`, false},
	{"string", `"x"`, false},
	{"empty", ``, false},
	{"empty object", `{}`, true},
	{"future version", `{"v":2,"id":"` + wireTestID + `","function":"echo","timeout_ms":1,"max_attempts":1}`, true},
	{"bad id", `{"v":1,"id":"../../etc","function":"echo","timeout_ms":1,"max_attempts":1}`, true},
	{"long bad id", `{"v":1,"id":"` + strings.Repeat("é", 40) + `","function":"echo","timeout_ms":1,"max_attempts":1}`, true},
	{"byte order mark", "\xef\xbb\xbf{\"v\":1}", false},
	{"unterminated string", `{"v":1,"id":"abc`, false},
	{"unterminated escape", `{"v":1,"id":"abc\`, false},
	{"short unicode escape", `{"v":1,"id":"\u12"}`, false},
}

// eventCases are messages of the events topic, as
// messageCases are task messages. They also seed FuzzDecodeEvent.
var eventCases = []struct {
	name string
	in   string
	fast bool
}{
	{"succeeded", `{"v":1,"event":{"task_id":"` + wireTestID + `","function":"echo","queue":"default","max_attempts":3,"created_at":"2026-01-02T03:04:05.123456789Z","attempt":1,"phase":"succeeded","runner":"r","at":"2026-01-02T03:04:06Z","started_at":"2026-01-02T03:04:05.5Z","result":{"n":1}}}`, true},
	{"retrying", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":2,"phase":"retrying","at":"2026-01-02T03:04:06Z","error":"exit status 1: \"boom\"\n\tat <main>","next_attempt_at":"2026-01-02T03:04:08+01:00"}}`, true},
	{"failed with claim check", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":3,"phase":"failed","result_ref":"results/x","error":"\u00e9\ud83d\ude00\ud800"}}`, true},
	{"cancelled", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":0,"phase":"cancelled","at":"2026-01-02T03:04:06Z"}}`, true},
	{"trace context", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"succeeded","at":"2026-01-02T03:04:06Z","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"k=v"}}`, true},
	{"tracestate escaped", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"started","tracestate":"a=\u0062","traceparent":null}}`, true},
	{"tracestate not a string", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"started","tracestate":[]}}`, false},
	{"event first", ` {"event":{"phase":"started","task_id":"` + wireTestID + `","attempt":1} , "v":1, "other":[{"runner":1}]} `, true},
	{"result verbatim", `{"v":1,"event":{"task_id":"` + wireTestID + `","phase":"succeeded","result": [ "<b>" , 1.5e3 ] }}`, true},
	{"result null", `{"v":1,"event":{"task_id":"` + wireTestID + `","phase":"succeeded","result":null}}`, true},
	{"event null", `{"v":1,"event":null}`, true},
	{"event twice merges", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1},"event":{"phase":"started","attempt":2}}`, true},
	{"event null between", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1},"event":null,"event":{"phase":"started","task_id":"` + wireTestID + `"}}`, true},
	{"many strings", `{"v":1,"event":{"task_id":"` + wireTestID + `","function":"a","queue":"b","phase":"started","runner":"c","error":"d","result_ref":"e","function":"f","queue":"g"}}`, true},
	{"too many strings", `{"v":1,"event":{"task_id":"` + wireTestID + `","function":"a","queue":"b","phase":"started","runner":"c","error":"d","result_ref":"e","function":"f","queue":"g","runner":"h","error":"i","result_ref":"j","function":"k","queue":"l","runner":"m","error":"n","phase":"started"}}`, false},
	{"unknown phase", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"exploded"}}`, true},
	{"negative attempt", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":-1,"phase":"started"}}`, true},
	{"attempt overflow", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":9223372036854775808,"phase":"started"}}`, false},
	{"bad time", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"started","at":"yesterday"}}`, false},
	{"key case", `{"v":1,"Event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"started"}}`, false},
	{"event key case", `{"v":1,"event":{"Task_ID":"` + wireTestID + `","attempt":1,"phase":"started"}}`, false},
	{"kelvin sign", `{"v":1,"event":{"tasK_id":"` + wireTestID + `","attempt":1,"phase":"started"}}`, false},
	{"event not object", `{"v":1,"event":[]}`, false},
	{"heartbeat", `{"v":1,"runner":{"id":"r","name":"r","functions":["echo"],"concurrency":4,"active":1,"started_at":"2026-01-02T03:04:05Z","seen_at":"2026-01-02T03:04:06Z"}}`, false},
	{"heartbeat without id", `{"v":1,"runner":{"name":"r"}}`, false},
	{"both", `{"v":1,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"started"},"runner":{"id":"r"}}`, false},
	{"neither", `{"v":1}`, true},
	{"v0", `{"v":0,"event":{"task_id":"` + wireTestID + `","attempt":1,"phase":"started"}}`, true},
	{"array", `[]`, false},
	{"garbage", "\xff\xfe\x00", false},
	{"truncated", `{"v":1,"event":{"task_id":"` + wireTestID + `"`, false},
}

func TestDecodeMessageMatchesJSON(t *testing.T) {
	for _, c := range messageCases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkDecodeMessage(t, []byte(c.in)); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

func TestDecodeEventMatchesJSON(t *testing.T) {
	for _, c := range eventCases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkDecodeEvent(t, []byte(c.in)); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

// awkwardString is a string with every kind of byte appendString escapes.
var awkwardString = func() string {
	var b strings.Builder
	for c := 0; c < 0x80; c++ {
		b.WriteByte(byte(c))
	}
	b.WriteString("é😀\u2028\u2029\ufffd\xff\xc3(\xed\xa0\x80\xe2\x80")
	return b.String()
}()

func wireTestTime(year int, loc *time.Location) time.Time {
	return time.Date(year, 1, 2, 3, 4, 5, 123456789, loc)
}

// In the encoder tests, fast says whether the hand-written encoder does
// without json.Marshal of the whole value (it may still call it for raw
// JSON to compact).
func TestEncodeMessageMatchesJSON(t *testing.T) {
	at := wireTestTime(2026, time.UTC)
	cases := []struct {
		name string
		m    Message
		fast bool
	}{
		{"typical", *benchMessage(), true},
		{"zero", Message{}, true},
		{"claim check", Message{ID: wireTestID, Function: "f", ArgsRef: "payloads/x", TimeoutMS: 1, MaxAttempts: 1, CreatedAt: at}, true},
		{"trace context", Message{ID: wireTestID, Function: "f", TimeoutMS: 1, MaxAttempts: 1, CreatedAt: at,
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Tracestate: "congo=t61rcWkgMzE"}, true},
		{"awkwardString trace context", Message{Traceparent: awkwardString, Tracestate: awkwardString}, true},
		{"awkwardString strings", Message{ID: awkwardString, Function: awkwardString, Queue: awkwardString, ArgsRef: awkwardString, CreatedAt: at}, true},
		{"args with spaces in strings", Message{Args: json.RawMessage(`{"a":"b c\"  \\"}`)}, true},
		{"args unicode", Message{Args: json.RawMessage(`["é€","\u2028"]`)}, true},
		{"args to compact", Message{Args: json.RawMessage(" { \"a\" : [ 1 , 2 ] }\n")}, true},
		{"args to escape", Message{Args: json.RawMessage(`"<a href='x'>&</a>` + "\u2028\u2029" + `"`)}, true},
		{"args paragraph separator", Message{Args: json.RawMessage("[\"\u2029\"]")}, true},
		{"args null", Message{Args: json.RawMessage(`null`)}, true},
		{"args invalid", Message{Args: json.RawMessage(`{"a":}`)}, false},
		{"args two values", Message{Args: json.RawMessage(`1 2`)}, false},
		{"args blank", Message{Args: json.RawMessage(` `)}, false},
		{"args invalid utf-8", Message{Args: json.RawMessage("\"\xff\"")}, true},
		{"numbers", Message{TimeoutMS: -1 << 63, MaxAttempts: 1<<63 - 1}, true},
		{"offset", Message{CreatedAt: wireTestTime(2026, time.FixedZone("", 5*3600+30*60))}, true},
		{"negative offset", Message{CreatedAt: wireTestTime(2026, time.FixedZone("X", -(23*3600+59*60+59)))}, true},
		{"offset seconds", Message{CreatedAt: wireTestTime(2026, time.FixedZone("", 61))}, true},
		{"year 0", Message{CreatedAt: wireTestTime(0, time.UTC)}, true},
		{"year 9999", Message{CreatedAt: wireTestTime(9999, time.UTC)}, true},
		{"year 10000", Message{CreatedAt: wireTestTime(10000, time.UTC)}, false},
		{"year -1", Message{CreatedAt: wireTestTime(-1, time.UTC)}, false},
		{"offset 24h", Message{CreatedAt: wireTestTime(2026, time.FixedZone("", 24*3600))}, false},
		{"whole nanoseconds", Message{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC)}, true},
		{"monotonic clock", Message{CreatedAt: time.Now()}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkEncodeMessage(t, &c.m); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

func TestEncodeEventMatchesJSON(t *testing.T) {
	at := wireTestTime(2026, time.UTC)
	cases := []struct {
		name string
		e    *Event
		fast bool
	}{
		{"typical", benchEvent(), true},
		{"nil", nil, true},
		{"zero", &Event{}, true},
		{"retrying", &Event{TaskID: wireTestID, Attempt: 2, Phase: PhaseRetrying, At: at, Error: "exit status 1: \"boom\" <&>",
			NextAttemptAt: at.Add(time.Minute)}, true},
		{"awkwardString strings", &Event{TaskID: awkwardString, Function: awkwardString, Queue: awkwardString, Phase: Phase(awkwardString), Runner: awkwardString,
			Error: awkwardString, ResultRef: awkwardString}, true},
		{"result to compact", &Event{Result: json.RawMessage("[1,\n2]")}, true},
		{"trace context", &Event{TaskID: wireTestID, Phase: PhaseSucceeded, At: at,
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Tracestate: "k=v"}, true},
		{"awkwardString trace context", &Event{Traceparent: awkwardString, Tracestate: awkwardString}, true},
		{"result invalid", &Event{Result: json.RawMessage(`[1,`)}, false},
		{"started year 10000", &Event{StartedAt: wireTestTime(10000, time.UTC)}, false},
		{"next attempt offset 24h", &Event{NextAttemptAt: wireTestTime(2026, time.FixedZone("", -24*3600))}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkEncodeEvent(t, c.e); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

func TestEncodeRunnerMatchesJSON(t *testing.T) {
	at := wireTestTime(2026, time.UTC)
	cases := []struct {
		name string
		r    *RunnerInfo
		fast bool
	}{
		{"typical", &RunnerInfo{ID: "r-1", Name: "r", Host: "h", Functions: []string{"echo", "sleep"}, Concurrency: 8,
			Active: 3, StartedAt: at, SeenAt: at.Add(time.Second), Kind: KindRunner, ExpiresAt: 5}, true},
		{"nil", nil, true},
		{"zero", &RunnerInfo{}, true},
		{"no functions", &RunnerInfo{ID: "r", Functions: []string{}}, true},
		{"awkwardString strings", &RunnerInfo{ID: awkwardString, Name: awkwardString, Host: awkwardString, Functions: []string{awkwardString, ""}, Exec: awkwardString}, true},
		{"exec isolation", &RunnerInfo{ID: "r", Functions: []string{"exec"}, Exec: "isolated (user, pid, mount, net namespaces)"}, true},
		{"seen year -5", &RunnerInfo{ID: "r", SeenAt: wireTestTime(-5, time.UTC)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkEncodeRunner(t, c.r); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

// FuzzEncodeMessage: EncodeMessage writes what json.Marshal writes, and
// what it writes decodes as encoding/json decodes it.
func FuzzEncodeMessage(f *testing.F) {
	f.Add(wireTestID, "echo", "default", []byte(`{"n":1}`), "", int64(300000), 3, int64(1767323045), int64(123456789), 0)
	f.Add(awkwardString, "\u2028", "<q>", []byte(" [1, \"<\"] "), "payloads/x", int64(-1), 0, int64(-62135596800), int64(0), -3600)
	f.Add("", "", "", []byte(`{`), "", int64(0), 0, int64(253402300800), int64(0), 86400)
	f.Fuzz(func(t *testing.T, id, function, queue string, args []byte, argsRef string, timeout int64, attempts int,
		sec, nsec int64, offset int) {
		// The trace context reuses strings of the corpus's signature.
		m := &Message{ID: id, Function: function, Queue: queue, Args: args, ArgsRef: argsRef, TimeoutMS: timeout,
			MaxAttempts: attempts, CreatedAt: time.Unix(sec, nsec).In(time.FixedZone("", offset)),
			Traceparent: argsRef, Tracestate: queue}
		checkEncodeMessage(t, m)
	})
}

// FuzzEncodeEvent: EncodeEvent and EncodeRunner write what json.Marshal
// writes, and what they write decodes as encoding/json decodes it.
func FuzzEncodeEvent(f *testing.F) {
	f.Add(wireTestID, "echo", "default", "succeeded", "r", "", []byte(`{"n":1}`), "", 3, 1, int64(1767323045), int64(123456789), 0, uint8(7))
	f.Add(awkwardString, "\u2028", "<q>", "x", "", "boom\n", []byte(" [1, \"<\"] "), "results/x", -1, 0, int64(-62135596800), int64(0), -3600, uint8(0))
	f.Fuzz(func(t *testing.T, id, function, queue, phase, runner, errText string, result []byte, resultRef string,
		maxAttempts, attempt int, sec, nsec int64, offset int, times uint8) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		// times picks which of the optional times are set, and how far
		// apart they are.
		some := func(bit uint8, d time.Duration) time.Time {
			if times&bit == 0 {
				return time.Time{}
			}
			return at.Add(d * time.Duration(times))
		}
		e := &Event{TaskID: id, Function: function, Queue: queue, MaxAttempts: maxAttempts, CreatedAt: at,
			Attempt: attempt, Phase: Phase(phase), Runner: runner, At: some(1, time.Hour), StartedAt: some(2, time.Minute),
			Error: errText, Result: result, ResultRef: resultRef, NextAttemptAt: some(4, 1000*time.Hour),
			Traceparent: resultRef, Tracestate: runner}
		checkEncodeEvent(t, e)
		var functions []string
		if times&8 != 0 {
			functions = strings.Split(errText, "\n")
		}
		checkEncodeRunner(t, &RunnerInfo{ID: id, Name: function, Host: runner, Functions: functions,
			Concurrency: maxAttempts, Active: attempt, StartedAt: at, SeenAt: some(16, time.Second), Exec: resultRef})
	})
}

// benchMessage and benchEvent are typical traffic: a task with small
// inline args, and the succeeded event of its first attempt.
func benchMessage() *Message {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return &Message{ID: NewID(at), Function: "echo", Queue: "default", Args: json.RawMessage(`{"n":1}`),
		TimeoutMS: 300000, MaxAttempts: 3, CreatedAt: at}
}

func benchEvent() *Event {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return &Event{TaskID: NewID(at), Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: at,
		Attempt: 1, Phase: PhaseSucceeded, Runner: "runner-7f3a", At: at.Add(1500 * time.Millisecond),
		StartedAt: at.Add(time.Second), Result: json.RawMessage(`{"n":1}`)}
}

func BenchmarkEncodeMessage(b *testing.B) {
	m := benchMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMessage(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	body, err := EncodeMessage(benchMessage())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMessage(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEvent(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	body, err := EncodeEvent(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWireCoversEveryField guards wire.go against a field added to the
// wire types but not to the hand-written codec: with every field set, the
// encoders must still write what json.Marshal writes, the decoders read
// what json.Unmarshal reads, and the decoders' key lists name the tags.
func TestWireCoversEveryField(t *testing.T) {
	var m Message
	fillWireFields(t, reflect.ValueOf(&m).Elem())
	m.V = WireVersion
	checkEncodeMessage(t, &m)
	b, _ := json.Marshal(&m)
	if !checkDecodeMessage(t, b) {
		t.Errorf("fast path refused %s", b)
	}

	var e Event
	fillWireFields(t, reflect.ValueOf(&e).Elem())
	checkEncodeEvent(t, &e)
	b, _ = json.Marshal(envelope{V: WireVersion, Event: &e})
	if !checkDecodeEvent(t, b) {
		t.Errorf("fast path refused %s", b)
	}

	var r RunnerInfo
	fillWireFields(t, reflect.ValueOf(&r).Elem())
	checkEncodeRunner(t, &r)

	for _, c := range []struct {
		v    any
		keys []string
	}{{Message{}, messageKeys}, {Event{}, eventKeys}, {envelope{}, envelopeKeys}} {
		var tags []string
		typ := reflect.TypeOf(c.v)
		for i := range typ.NumField() {
			tags = append(tags, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
		}
		if !reflect.DeepEqual(tags, c.keys) {
			t.Errorf("keys of %s: wire.go has %q, the struct %q", typ, c.keys, tags)
		}
	}
}

// fillWireFields sets every field of the struct v to a distinct non-zero
// value.
func fillWireFields(t *testing.T, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC).Add(time.Duration(i) * time.Hour)))
		case json.RawMessage:
			f.SetBytes(fmt.Appendf(nil, "[%d]", i))
		case []string:
			f.Set(reflect.ValueOf([]string{"a", fmt.Sprint(i)}))
		case Requires:
			f.Set(reflect.ValueOf(Requires{"b<": fmt.Sprintf(">=%d", i), "a\u2028": ""}))
		case Traits:
			f.Set(reflect.ValueOf(Traits{"z": fmt.Sprint(i), "gpu": "", "<&>": "\x7f"}))
		case string, Phase:
			f.SetString(fmt.Sprintf("s%d", i))
		case int, int64:
			f.SetInt(int64(i + 1))
		default:
			t.Fatalf("field %s of %s has type %s: teach wire.go and this test about it", v.Type().Field(i).Name, v.Type(), f.Type())
		}
	}
}

// FuzzDecodeMember: with one member of a task message, of an event and of
// a status in a list chosen by the fuzzer, key (inside the quotes) and
// value, DecodeMessage, DecodeEvent and DecodeStatusList give what
// encoding/json gives. It aims the fuzzer at the values the
// hand-written decoder reads (strings, escapes, numbers, times, raw JSON)
// more directly than FuzzDecodeMessage does.
func FuzzDecodeMember(f *testing.F) {
	values := []string{`"x"`, `"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800"`, "\"\xff\"", `null`, `1`, `-0`, `1.5e3`,
		`123456789012345678`, `"2026-01-02T03:04:05.123456789+01:00"`, `{"a":[true,false,null]}`, `[]`}
	for _, k := range append(slices.Concat(messageKeys, eventKeys, statusKeys), "ID", "x", `\u0076`) {
		for _, v := range values {
			f.Add(k, []byte(v))
		}
	}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		k := `"` + key + `"` // raw, so that keys may have escapes
		checkDecodeMessage(t, slices.Concat([]byte(`{"v":1,"id":"`+wireTestID+`",`+k+`:`), value,
			[]byte(`,"function":"f","timeout_ms":1,"max_attempts":1}`)))
		checkDecodeEvent(t, slices.Concat([]byte(`{"v":1,"event":{"task_id":"`+wireTestID+`",`+k+`:`), value,
			[]byte(`,"phase":"started"}}`)))
		checkDecodeStatusList(t, slices.Concat([]byte(`{"tasks":[{"id":"`+wireTestID+`",`+k+`:`), value,
			[]byte(`,"state":"queued"}]}`)))
	})
}
