package task

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The tests below hold the status codec of wire.go to encoding/json as the
// API and the client use it: json.NewEncoder(w).Encode and json.Unmarshal.

func jsonEncode(v any) ([]byte, error) {
	var b bytes.Buffer
	err := json.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

// jsonStatusList is what the client decodes a batch response into.
type jsonStatusList struct {
	Tasks []*Status `json:"tasks"`
}

// checkEncodeStatus compares EncodeStatus with encoding/json on st, decodes
// what it gives, and returns whether the fast path took st.
func checkEncodeStatus(t *testing.T, st *Status) (fast bool) {
	t.Helper()
	want, wantErr := jsonEncode(st)
	got, ok := EncodeStatus(st)
	if !ok {
		return false
	}
	checkEncode(t, got, nil, want, wantErr)
	checkDecodeStatus(t, got)
	return true
}

// checkEncodeStatusList is checkEncodeStatus for EncodeStatusList.
func checkEncodeStatusList(t *testing.T, sts []*Status) (fast bool) {
	t.Helper()
	want, wantErr := jsonEncode(map[string]any{"tasks": sts})
	got, ok := EncodeStatusList(sts)
	if !ok {
		return false
	}
	checkEncode(t, got, nil, want, wantErr)
	checkDecodeStatusList(t, got)
	return true
}

// checkDecodeStatus compares DecodeStatus with json.Unmarshal on b, and
// returns whether the fast path took it.
func checkDecodeStatus(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	var st Status
	if !DecodeStatus(b, &st) {
		if !reflect.DeepEqual(st, Status{}) {
			t.Fatalf("fast path refused but left %+v", st)
		}
		return false
	}
	var want Status
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects: %v", err)
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("fast path: %+v, encoding/json gives %+v", st, want)
	}
	return true
}

// checkDecodeStatusList is checkDecodeStatus for DecodeStatusList.
func checkDecodeStatusList(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	sts, ok := DecodeStatusList(b)
	if !ok {
		if sts != nil {
			t.Fatalf("fast path refused but returned %v", sts)
		}
		return false
	}
	var want jsonStatusList
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects: %v", err)
	}
	if !reflect.DeepEqual(sts, want.Tasks) {
		t.Fatalf("fast path: %s, encoding/json gives %s", dumpStatuses(sts), dumpStatuses(want.Tasks))
	}
	return true
}

func dumpStatuses(sts []*Status) string {
	if sts == nil {
		return "nil"
	}
	var b strings.Builder
	for _, st := range sts {
		fmt.Fprintf(&b, "%+v ", st)
	}
	return "[ " + b.String() + "]"
}

const (
	statusQueued    = `{"id":"` + wireTestID + `","function":"echo","queue":"default","state":"queued","attempt":0,"max_attempts":3,"created_at":"2026-01-02T03:04:05.123456789Z"}`
	statusSucceeded = `{"id":"` + wireTestID + `","function":"echo","queue":"default","state":"succeeded","attempt":1,"max_attempts":3,"created_at":"2026-01-02T03:04:05.123456789Z","started_at":"2026-01-02T03:04:05.5Z","finished_at":"2026-01-02T03:04:06+01:00","runner":"r-1","error":"","result":{"n":[1,2.5e3,"x"]},"result_ref":"results/x","next_attempt_at":"0001-01-01T00:00:00Z","idempotency_key":"k-1"}`
)

// statusCases are status documents, well-formed or not, as messageCases;
// they also seed FuzzDecodeStatus.
var statusCases = []struct {
	name string
	in   string
	fast bool
}{
	{"queued", statusQueued, true},
	{"succeeded", statusSucceeded, true},
	{"empty object", `{}`, true},
	{"spaced", " \n{ \"id\" : \"x\" ,\t\"result\" : [ 1 , { \"a\" : null } ] }\r\n", true},
	{"result null", `{"id":"x","result":null}`, true},
	{"result string", `{"result":"<a>\u2028\ud800"}`, true},
	{"result then null", `{"result":[1],"result":null}`, true},
	{"nulls", `{"id":null,"state":null,"attempt":null,"created_at":null,"started_at":null,"idempotency_key":null}`, true},
	{"escapes", `{"id":"\u0041\"\\\/\b\f\n\r\t","error":"\u003cscript\u003e \u0026 <b> \ud83d\ude00 \ud800 \u2028","state":"r\u00e9"}`, true},
	{"utf-8", "{\"function\":\"échø 😀 \u2029\",\"error\":\"\xff\xc3(\"}", true},
	{"bookkeeping keys ignored", `{"id":"x","kind":"task","Kind":"runner","result_json":"1","phase":"started","event_at":"?","expires_at":1,"DocstoreRevision":{},"-":1}`, true},
	{"unknown keys", `{"id":"x","next_cursor":"c","extra":[true,false,{"a":"b"}]}`, true},
	{"duplicate keys", `{"id":"a","id":"b","id":null,"attempt":1,"attempt":2,"created_at":"2026-01-02T03:04:05Z","created_at":null}`, true},
	{"twelve strings", `{"id":"1","function":"2","queue":"3","state":"4","runner":"5","error":"6","result_ref":"7","idempotency_key":"8","group":{"id":"9","index":0},"next":"10","previous":"11","callback_of":"12"}`, true},
	{"seventeen strings", `{"id":"1","function":"2","queue":"3","state":"4","runner":"5","error":"6","result_ref":"7","idempotency_key":"8","group":{"id":"9","index":0},"next":"10","previous":"11","callback_of":"12","id":"13","function":"14","queue":"15","state":"16","runner":"17"}`, false},
	{"group member", `{"id":"x","state":"queued","group":{"id":"g","index":0},"next":"n","previous":"p"}`, true},
	{"group index 7", `{"group":{"index":7,"id":"g"}}`, true},
	{"group null", `{"group":{"id":"g","index":1},"group":null}`, true},
	{"group twice", `{"group":{"id":"g"},"group":{"index":2}}`, true},
	{"group unknown key", `{"group":{"id":"g","x":[1]}}`, true},
	{"group key case", `{"group":{"ID":"g"}}`, false},
	{"group string", `{"group":"g"}`, false},
	{"group index float", `{"group":{"index":1.5}}`, false},
	{"waiting callback", `{"id":"c","state":"waiting","callback_of":"g","next":"n"}`, true},
	{"time offset", `{"created_at":"2026-01-02T03:04:05-23:59","started_at":"0000-01-01T00:00:00Z","next_attempt_at":"9999-12-31T23:59:59.999999999Z"}`, true},
	{"bad time", `{"id":"x","created_at":"2026-13-01T00:00:00Z"}`, false},
	{"time without zone", `{"finished_at":"2026-01-02T03:04:05"}`, false},
	{"time escaped", `{"started_at":"2026-01-02T03:04:05\u005a"}`, false},
	{"time number", `{"next_attempt_at":0}`, false},
	{"key case", `{"ID":"x"}`, false},
	{"key folds", `{"idempotency_Key":"x"}`, false},
	{"kelvin sign", `{"idempotency_` + "\u212a" + `ey":"x"}`, false},
	{"escaped key", `{"\u0069d":"x"}`, false},
	{"attempt float", `{"attempt":1.0}`, false},
	{"attempt overflow", `{"attempt":9223372036854775808}`, false},
	{"attempt string", `{"attempt":"1"}`, false},
	{"state number", `{"state":1}`, false},
	{"result invalid", `{"result":[1,]}`, false},
	{"top-level null", `null`, false},
	{"array", `[]`, false},
	{"empty", ``, false},
	{"trailing garbage", `{"id":"x"}x`, false},
	{"truncated", `{"id":"x"`, false},
}

// statusListCases are batch responses, as statusCases are statuses.
var statusListCases = []struct {
	name string
	in   string
	fast bool
}{
	{"one", `{"tasks":[` + statusQueued + `]}`, true},
	{"as the API writes it", `{"tasks":[` + statusQueued + `,` + statusSucceeded + `,` + statusQueued + "]}\n", true},
	{"empty list", `{"tasks":[]}`, true},
	{"empty list spaced", `{ "tasks" : [ ] }`, true},
	{"tasks null", `{"tasks":null}`, true},
	{"no tasks", `{}`, true},
	{"null element", `{"tasks":[null,{},null]}`, true},
	{"next_cursor after", `{"tasks":[{"id":"a"}],"next_cursor":"c"}`, true},
	{"next_cursor before", `{"next_cursor":"c","tasks":[{"id":"a"}],"other":{"tasks":[]}}`, true},
	{"many strings", `{"tasks":[` + strings.Repeat(`{"id":"1","function":"2","queue":"3","state":"4","runner":"5","error":"6","result_ref":"7","idempotency_key":"8"},`, 7) + `{}]}`, true},
	{"strings shared across statuses", `{"tasks":[{"id":"a","error":"\u00e9"},{"id":"b"},{"function":"c"}]}`, true},
	{"tasks twice", `{"tasks":[{"id":"a","attempt":1}],"tasks":[{"attempt":2}]}`, false},
	{"tasks null then list", `{"tasks":null,"tasks":[]}`, false},
	{"tasks key case", `{"Tasks":[]}`, false},
	{"tasks escaped key", `{"t\u0061sks":[]}`, false},
	{"tasks object", `{"tasks":{}}`, false},
	{"tasks number", `{"tasks":[1]}`, false},
	{"tasks nested", `{"tasks":[[]]}`, false},
	{"bad time in second", `{"tasks":[{"id":"a"},{"created_at":"now"}]}`, false},
	{"key case in status", `{"tasks":[{"Id":"a"}]}`, false},
	{"trailing comma", `{"tasks":[{},]}`, false},
	{"truncated", `{"tasks":[{"id":"a"}`, false},
	{"top-level array", `[{"id":"a"}]`, false},
	{"top-level null", `null`, false},
	{"garbage", "\xff", false},
}

func TestDecodeStatusMatchesJSON(t *testing.T) {
	for _, c := range statusCases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkDecodeStatus(t, []byte(c.in)); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
			// Each status also as a list of one, and of two.
			list := `{"tasks":[` + c.in + `]}`
			if fast := checkDecodeStatusList(t, []byte(list)); fast != c.fast && c.in != "null" && c.in != "" {
				t.Errorf("fast path took %s: %v, want %v", list, fast, c.fast)
			}
			checkDecodeStatusList(t, []byte(`{"tasks":[`+statusSucceeded+`,`+c.in+`]}`))
		})
	}
}

func TestDecodeStatusListMatchesJSON(t *testing.T) {
	for _, c := range statusListCases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkDecodeStatusList(t, []byte(c.in)); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
		})
	}
}

func TestEncodeStatusMatchesJSON(t *testing.T) {
	at := wireTestTime(2026, time.UTC)
	full := &Status{ID: wireTestID, Function: "echo", Queue: "default", State: Succeeded, Attempt: 2, MaxAttempts: 3,
		CreatedAt: at, StartedAt: at.Add(time.Second), FinishedAt: at.Add(2 * time.Second), Runner: "r-1",
		Error: "exit 1", Result: json.RawMessage(`{"n":1}`), ResultRef: "results/x", NextAttemptAt: at.Add(time.Hour),
		IdempotencyKey: "k", Kind: KindTask, ResultJSON: `{"n":1}`, Phase: PhaseSucceeded, EventAt: at, ExpiresAt: 7,
		DocstoreRevision: "rev"}
	cases := []struct {
		name string
		st   *Status
		fast bool
	}{
		{"queued", benchStatuses()[0], true},
		{"full", full, true},
		{"nil", nil, true},
		{"zero", &Status{}, true},
		{"awkward strings", &Status{ID: awkwardString, Function: awkwardString, Queue: awkwardString, State: State(awkwardString),
			Runner: awkwardString, Error: awkwardString, ResultRef: awkwardString, IdempotencyKey: awkwardString}, true},
		{"html", &Status{Error: `<script>alert("x")</script> & more`, Result: json.RawMessage(`"<b>&amp;</b>"`)}, true},
		{"result null", &Status{Result: json.RawMessage(`null`)}, true},
		{"result empty", &Status{Result: json.RawMessage{}}, true},
		{"result to compact", &Status{Result: json.RawMessage(" { \"a\" : [ 1 , \"b c\" ] }\n")}, true},
		{"result unicode", &Status{Result: json.RawMessage("[\"é\u2028\u2029\",\"\\ud800\"]")}, true},
		{"result invalid utf-8", &Status{Result: json.RawMessage("\"\xff\"")}, true},
		{"result invalid", &Status{Result: json.RawMessage(`{"a":`)}, false},
		{"result two values", &Status{Result: json.RawMessage(`1 2`)}, false},
		{"numbers", &Status{Attempt: -1 << 63, MaxAttempts: 1<<63 - 1}, true},
		{"offsets", &Status{CreatedAt: wireTestTime(2026, time.FixedZone("X", 5*3600+30*60)),
			StartedAt: wireTestTime(0, time.FixedZone("", -(23*3600+59*60+59))), FinishedAt: wireTestTime(9999, time.FixedZone("", 61))}, true},
		{"monotonic clock", &Status{CreatedAt: time.Now(), NextAttemptAt: time.Now().Add(time.Minute)}, true},
		{"zero instant elsewhere", &Status{StartedAt: time.Time{}.In(time.FixedZone("", 3600))}, true},
		{"created year 10000", &Status{CreatedAt: wireTestTime(10000, time.UTC)}, false},
		{"started year -1", &Status{StartedAt: wireTestTime(-1, time.UTC)}, false},
		{"finished offset 24h", &Status{FinishedAt: wireTestTime(2026, time.FixedZone("", 24*3600))}, false},
		{"next attempt year 10000", &Status{NextAttemptAt: wireTestTime(10000, time.UTC)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkEncodeStatus(t, c.st); fast != c.fast {
				t.Errorf("fast path took it: %v, want %v", fast, c.fast)
			}
			if fast := checkEncodeStatusList(t, []*Status{full, c.st}); fast != c.fast {
				t.Errorf("fast path took it in a list: %v, want %v", fast, c.fast)
			}
		})
	}
	for _, sts := range [][]*Status{nil, {}, {nil}, benchStatuses()} {
		if !checkEncodeStatusList(t, sts) {
			t.Errorf("fast path refused %d statuses", len(sts))
		}
	}
}

// FuzzDecodeStatus: DecodeStatus and DecodeStatusList give what
// json.Unmarshal gives on b, as a status, a list and a list of one; and
// what they accept encodes as encoding/json encodes it.
func FuzzDecodeStatus(f *testing.F) {
	for _, c := range statusCases {
		f.Add([]byte(c.in))
	}
	for _, c := range statusListCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkDecodeStatus(t, b) {
			var st Status
			DecodeStatus(b, &st)
			checkEncodeStatus(t, &st)
		}
		if checkDecodeStatusList(t, b) {
			sts, _ := DecodeStatusList(b)
			checkEncodeStatusList(t, sts)
		}
		checkDecodeStatusList(t, append(append([]byte(`{"tasks":[`), b...), ']', '}'))
	})
}

// FuzzEncodeStatus: EncodeStatus and EncodeStatusList write what
// json.NewEncoder(w).Encode writes, and what they write decodes as
// encoding/json decodes it.
func FuzzEncodeStatus(f *testing.F) {
	f.Add(wireTestID, "echo", "default", "queued", "", "", []byte(nil), "", "", 0, 3, int64(1767323045), int64(123456789), 0, uint8(0))
	f.Add(awkwardString, "\u2028", "<q>", "succeeded", "r", "boom\n&", []byte(" [1, \"<\"] "), "results/x", "k", -1, 0, int64(-62135596800), int64(0), -3600, uint8(7))
	f.Add("", "", "", "", "", "", []byte(`{`), "", "", 0, 0, int64(253402300800), int64(0), 86400, uint8(255))
	f.Fuzz(func(t *testing.T, id, function, queue, state, runner, errText string, result []byte, resultRef, key string,
		attempt, maxAttempts int, sec, nsec int64, offset int, times uint8) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		// times picks which of the optional times are set, and how far
		// apart they are.
		some := func(bit uint8, d time.Duration) time.Time {
			if times&bit == 0 {
				return time.Time{}
			}
			return at.Add(d * time.Duration(times))
		}
		st := &Status{ID: id, Function: function, Queue: queue, State: State(state), Attempt: attempt,
			MaxAttempts: maxAttempts, CreatedAt: at, StartedAt: some(1, time.Minute), FinishedAt: some(2, time.Hour),
			Runner: runner, Error: errText, Result: result, ResultRef: resultRef, NextAttemptAt: some(4, 1000*time.Hour),
			IdempotencyKey: key}
		checkEncodeStatus(t, st)
		var sts []*Status
		if times&8 != 0 {
			sts = []*Status{st, nil, {ID: id}}
		}
		checkEncodeStatusList(t, sts)
	})
}

// TestStatusCoversEveryField is TestWireCoversEveryField for Status.
func TestStatusCoversEveryField(t *testing.T) {
	var st Status
	v := reflect.ValueOf(&st).Elem()
	var tags []string
	for i := range v.NumField() {
		f, tag := v.Field(i), strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]
		if tag != "-" {
			tags = append(tags, tag)
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("s" + string(rune('a'+i)))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Slice: // json.RawMessage
			f.SetBytes([]byte(`[` + string(rune('0'+i%10)) + `]`))
		case reflect.Interface:
			f.Set(reflect.ValueOf(i))
		case reflect.Map: // Requires, Traits
			f.Set(reflect.ValueOf(map[string]string{"k" + string(rune('a'+i)): "", "<&>": ">=3." + string(rune('0'+i%10))}).Convert(f.Type()))
		case reflect.Struct: // time.Time
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC).Add(time.Duration(i) * time.Hour)))
		case reflect.Pointer: // *GroupRef
			g := &GroupRef{ID: "g" + string(rune('a'+i)), Index: i}
			if !reflect.DeepEqual(g, &GroupRef{ID: g.ID, Index: g.Index}) || reflect.TypeFor[GroupRef]().NumField() != len(groupRefKeys) {
				t.Fatalf("GroupRef has fields wire.go does not know")
			}
			f.Set(reflect.ValueOf(g))
		default:
			t.Fatalf("field %s of Status has type %s: teach wire.go and this test about it", v.Type().Field(i).Name, f.Type())
		}
	}
	if !reflect.DeepEqual(tags, statusKeys) {
		t.Errorf("keys of Status: wire.go has %q, the struct %q", statusKeys, tags)
	}
	if !checkEncodeStatus(t, &st) {
		t.Errorf("fast path refused %+v", st)
	}
	b, _ := json.Marshal(&st)
	if !checkDecodeStatus(t, b) {
		t.Errorf("fast path refused %s", b)
	}
}

// benchStatuses is a batch as the API answers it at 15 000 tasks/s,
// 7 fresh tasks.
func benchStatuses() []*Status {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	sts := make([]*Status, 7)
	for i := range sts {
		sts[i] = &Status{ID: NewID(at), Function: "echo", Queue: "default", State: Queued, MaxAttempts: 3, CreatedAt: at}
	}
	return sts
}

func BenchmarkEncodeStatusList(b *testing.B) {
	sts := benchStatuses()
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := json.NewEncoder(io.Discard).Encode(map[string]any{"tasks": sts}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := EncodeStatusList(sts); !ok {
				b.Fatal("fast path refused")
			}
		}
	})
}

func BenchmarkDecodeStatusList(b *testing.B) {
	body, ok := EncodeStatusList(benchStatuses())
	if !ok {
		b.Fatal("fast path refused")
	}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out jsonStatusList
			if err := json.Unmarshal(body, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := DecodeStatusList(body); !ok {
				b.Fatal("fast path refused")
			}
		}
	})
}
