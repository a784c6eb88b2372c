package task

// This file is the hand-written JSON codec behind EncodeMessage,
// EncodeEvent, EncodeRunner, DecodeMessage and DecodeEvent, and of the
// API's status documents (EncodeStatus, DecodeStatus and their lists): the
// bytes json.Marshal writes and the values json.Unmarshal reads, without
// reflection.
//
// Each direction goes ahead only where it is sure to do what encoding/json
// does, and otherwise reports ok == false for the caller to do the whole
// work with encoding/json, as before; so every error, and its message,
// still comes from encoding/json. Encoding falls back for a time that
// MarshalJSON rejects (a year outside 0..9999, an offset of 24 hours or
// more) and for raw JSON that is not valid (raw JSON that only needs
// compacting or escaping goes through json.Marshal on its own). Decoding
// falls back for anything but a well-formed object whose members have the
// types of the fields: for keys with escapes or that match a field only
// case-insensitively, integers with a fraction, an exponent or more than
// 18 skipDigits, raw values nested deeper than maxDepth, and runner
// heartbeats, which are rare. The decoded strings of a message share one
// allocation, so any of them keeps all of them alive (not the raw args or
// result, which are copied apart as encoding/json copies them).
//
// codec_test.go holds both paths to encoding/json.

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// wireEncoder appends the wire form of a value to b; ok turns false when
// encoding/json must do it instead.
type wireEncoder struct {
	b  []byte
	ok bool
}

func newWireEncoder(size int) wireEncoder { return wireEncoder{b: make([]byte, 0, size), ok: true} }

func (e *wireEncoder) lit(s string) { e.b = append(e.b, s...) }

func (e *wireEncoder) int(n int64) { e.b = strconv.AppendInt(e.b, n, 10) }

func (e *wireEncoder) str(s string) { e.b = appendString(e.b, s) }

// time writes t as time.Time's MarshalJSON does, which is AppendText
// quoted.
func (e *wireEncoder) time(t time.Time) {
	b, err := t.AppendText(append(e.b, '"'))
	if err != nil {
		e.ok = false
		return
	}
	e.b = append(b, '"')
}

// The members encoding/json omits when empty (omitempty, omitzero): key
// is the member's `,"name":` prefix.

func (e *wireEncoder) optStr(key, s string) {
	if s != "" {
		e.lit(key)
		e.str(s)
	}
}

// strMap writes a map of strings, keys sorted as encoding/json sorts
// them, unless it is empty (omitempty).
func (e *wireEncoder) strMap(key string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.lit(key)
	e.lit(`{`)
	for i, k := range keys {
		if i > 0 {
			e.lit(`,`)
		}
		e.str(k)
		e.lit(`:`)
		e.str(m[k])
	}
	e.lit(`}`)
}

func (e *wireEncoder) optTime(key string, t time.Time) {
	if !t.IsZero() {
		e.lit(key)
		e.time(t)
	}
}

func (e *wireEncoder) optRaw(key string, r json.RawMessage) {
	if len(r) > 0 {
		e.lit(key)
		e.raw(r)
	}
}

// raw writes a json.RawMessage the way json.Marshal does: compacted, with
// <, >, &, U+2028 and U+2029 escaped, and ok false if it is not JSON.
func (e *wireEncoder) raw(r json.RawMessage) {
	if compactJSON(r) {
		e.b = append(e.b, r...)
		return
	}
	c, err := json.Marshal(r)
	if err != nil {
		e.ok = false
		return
	}
	e.b = append(e.b, c...)
}

// compactJSON reports whether r is one JSON value that json.Marshal would
// copy unchanged: no whitespace outside strings, nothing to escape.
func compactJSON(r []byte) bool {
	inString := false
	for i := 0; i < len(r); i++ {
		switch c := r[i]; c {
		case '"':
			inString = !inString
		case '\\':
			i++ // valid only in a string, where it escapes the next byte
		case ' ', '\t', '\n', '\r':
			if !inString {
				return false
			}
		case '<', '>', '&':
			return false
		case 0xE2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
			if i+2 < len(r) && r[i+1] == 0x80 && r[i+2]&^1 == 0xA8 {
				return false
			}
		}
	}
	d := wireDecoder{data: r}
	return d.skipValue(0) && d.off == len(r)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json writes
// it by default: ", \ and control characters escaped (\b, \f, \n, \r, \t
// in short), <, > and & as \u003c, \u003e, \u0026, U+2028 and U+2029 as
// \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendMessage encodes m in the field order of its struct tags.
func appendMessage(m *Message) ([]byte, bool) {
	e := newWireEncoder(160 + len(m.ID) + len(m.Function) + len(m.Queue) + len(m.Args) + len(m.ArgsRef) +
		len(m.Traceparent) + len(m.Tracestate))
	e.lit(`{"v":`)
	e.int(int64(m.V))
	e.lit(`,"id":`)
	e.str(m.ID)
	e.lit(`,"function":`)
	e.str(m.Function)
	e.lit(`,"queue":`)
	e.str(m.Queue)
	e.optRaw(`,"args":`, m.Args)
	e.optStr(`,"args_ref":`, m.ArgsRef)
	e.lit(`,"timeout_ms":`)
	e.int(m.TimeoutMS)
	e.lit(`,"max_attempts":`)
	e.int(int64(m.MaxAttempts))
	e.lit(`,"created_at":`)
	e.time(m.CreatedAt)
	e.optStr(`,"traceparent":`, m.Traceparent)
	e.optStr(`,"tracestate":`, m.Tracestate)
	e.strMap(`,"requires":`, m.Requires)
	e.lit(`}`)
	return e.b, e.ok
}

// appendEvent encodes the envelope of e (which may be nil).
func appendEvent(ev *Event) ([]byte, bool) {
	size := 320
	if ev != nil {
		size += len(ev.TaskID) + len(ev.Function) + len(ev.Queue) + len(ev.Phase) + len(ev.Runner) +
			len(ev.Error) + len(ev.Result) + len(ev.ResultRef) + len(ev.Traceparent) + len(ev.Tracestate)
	}
	e := newWireEncoder(size)
	e.lit(`{"v":`)
	e.int(WireVersion)
	if ev == nil {
		e.lit(`}`)
		return e.b, e.ok
	}
	e.lit(`,"event":{"task_id":`)
	e.str(ev.TaskID)
	e.lit(`,"function":`)
	e.str(ev.Function)
	e.lit(`,"queue":`)
	e.str(ev.Queue)
	e.lit(`,"max_attempts":`)
	e.int(int64(ev.MaxAttempts))
	e.lit(`,"created_at":`)
	e.time(ev.CreatedAt)
	e.lit(`,"attempt":`)
	e.int(int64(ev.Attempt))
	e.lit(`,"phase":`)
	e.str(string(ev.Phase))
	e.optStr(`,"runner":`, ev.Runner)
	e.lit(`,"at":`)
	e.time(ev.At)
	e.optTime(`,"started_at":`, ev.StartedAt)
	e.optStr(`,"error":`, ev.Error)
	e.optRaw(`,"result":`, ev.Result)
	e.optStr(`,"result_ref":`, ev.ResultRef)
	e.optTime(`,"next_attempt_at":`, ev.NextAttemptAt)
	e.optStr(`,"traceparent":`, ev.Traceparent)
	e.optStr(`,"tracestate":`, ev.Tracestate)
	e.strMap(`,"matched":`, ev.Matched)
	e.lit(`}}`)
	return e.b, e.ok
}

// appendRunner encodes the envelope of r (which may be nil).
func appendRunner(r *RunnerInfo) ([]byte, bool) {
	size := 200
	if r != nil {
		size += len(r.ID) + len(r.Name) + len(r.Host) + len(r.Exec)
		for _, f := range r.Functions {
			size += len(f) + 3
		}
	}
	e := newWireEncoder(size)
	e.lit(`{"v":`)
	e.int(WireVersion)
	if r == nil {
		e.lit(`}`)
		return e.b, e.ok
	}
	e.lit(`,"runner":{"id":`)
	e.str(r.ID)
	e.lit(`,"name":`)
	e.str(r.Name)
	e.optStr(`,"host":`, r.Host)
	e.lit(`,"functions":`)
	if r.Functions == nil {
		e.lit(`null`)
	} else {
		e.lit(`[`)
		for i, f := range r.Functions {
			if i > 0 {
				e.lit(`,`)
			}
			e.str(f)
		}
		e.lit(`]`)
	}
	e.lit(`,"concurrency":`)
	e.int(int64(r.Concurrency))
	e.lit(`,"active":`)
	e.int(int64(r.Active))
	e.lit(`,"started_at":`)
	e.time(r.StartedAt)
	e.lit(`,"seen_at":`)
	e.time(r.SeenAt)
	e.optStr(`,"exec":`, r.Exec)
	if len(r.Queues) > 0 {
		e.lit(`,"queues":[`)
		for i, q := range r.Queues {
			if i > 0 {
				e.lit(`,`)
			}
			e.str(q)
		}
		e.lit(`]`)
	}
	e.strMap(`,"traits":`, r.Traits)
	e.lit(`}}`)
	return e.b, e.ok
}

// maxDepth bounds the nesting the decoder follows in raw values, far below
// encoding/json's limit of 10000 so that what it accepts, encoding/json
// accepts.
const maxDepth = 1000

// wireDecoder reads JSON from data at off. Its methods return false for
// anything they are not sure encoding/json reads the same way; they do not
// say why, as the caller then hands the whole input to encoding/json.
type wireDecoder struct {
	data []byte
	off  int
	// pending are the strings read, set by finish so that they share one
	// allocation.
	pending [16]pendingString
	npend   int
}

// pendingString is a string field to set, and where its JSON string is in
// data, between the quotes.
type pendingString struct {
	dst      *string
	from, to int
}

// finish unquotes the pending strings into one allocation and sets them.
func (d *wireDecoder) finish() {
	n := 0
	for _, p := range d.pending[:d.npend] {
		n += p.to - p.from // unquoting shrinks a string, unless it has invalid UTF-8
	}
	var text strings.Builder
	text.Grow(n)
	var ends [len(d.pending)]int
	for i, p := range d.pending[:d.npend] {
		unquoteJSON(&text, d.data[p.from:p.to])
		ends[i] = text.Len()
	}
	s, from := text.String(), 0
	for i, p := range d.pending[:d.npend] {
		*p.dst = s[from:ends[i]]
		from = ends[i]
	}
}

func (d *wireDecoder) ws() {
	for d.off < len(d.data) {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (d *wireDecoder) end() bool {
	d.ws()
	return d.off == len(d.data)
}

func (d *wireDecoder) next(c byte) bool {
	if d.off < len(d.data) && d.data[d.off] == c {
		d.off++
		return true
	}
	return false
}

func (d *wireDecoder) literal(s string) bool {
	if bytes.HasPrefix(d.data[d.off:], []byte(s)) {
		d.off += len(s)
		return true
	}
	return false
}

// null reads a null if there is one: encoding/json leaves a field alone
// for it, except for json.RawMessage and pointers.
func (d *wireDecoder) null() bool { return d.literal("null") }

// object reads an object, calling member with each key (as it is between
// the quotes) and off at its value, for member to read the value.
func (d *wireDecoder) object(member func(key []byte) bool) bool {
	if !d.next('{') {
		return false
	}
	d.ws()
	if d.next('}') {
		return true
	}
	for {
		d.ws()
		start := d.off
		if !d.skipString() {
			return false
		}
		key := d.data[start+1 : d.off-1]
		d.ws()
		if !d.next(':') {
			return false
		}
		d.ws()
		if !member(key) {
			return false
		}
		d.ws()
		if d.next('}') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

// array reads an array, calling elem with off at each element, for elem
// to read it.
func (d *wireDecoder) array(elem func() bool) bool {
	if !d.next('[') {
		return false
	}
	d.ws()
	if d.next(']') {
		return true
	}
	for {
		d.ws()
		if !elem() {
			return false
		}
		d.ws()
		if d.next(']') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

// unknown skips the value of a member whose key is none of fields, as
// encoding/json does unless the key has escapes or matches one of fields
// case-insensitively.
func (d *wireDecoder) unknown(key []byte, fields []string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		return false
	}
	for _, f := range fields {
		if bytes.EqualFold(key, []byte(f)) {
			return false
		}
	}
	return d.skipValue(0)
}

// skipValue reads one JSON value of at most maxDepth-depth levels.
func (d *wireDecoder) skipValue(depth int) bool {
	if d.off >= len(d.data) {
		return false
	}
	switch d.data[d.off] {
	case '"':
		return d.skipString()
	case '{':
		return depth < maxDepth && d.object(func([]byte) bool { return d.skipValue(depth + 1) })
	case '[':
		return depth < maxDepth && d.array(func() bool { return d.skipValue(depth + 1) })
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.null()
	}
	return d.skipNumber()
}

// skipString reads a string: no control characters, only the escapes of
// RFC 8259. Like encoding/json's scanner it does not check UTF-8.
func (d *wireDecoder) skipString() bool {
	if !d.next('"') {
		return false
	}
	for i := d.off; i < len(d.data); i++ {
		for i < len(d.data) && plainInString[d.data[i]] {
			i++
		}
		if i == len(d.data) {
			break
		}
		switch c := d.data[i]; {
		case c == '"':
			d.off = i + 1
			return true
		case c < ' ':
			return false
		case c == '\\':
			i++
			if i == len(d.data) {
				return false
			}
			switch d.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if hex4(d.data[i-1:]) < 0 {
					return false
				}
				i += 4
			default:
				return false
			}
		}
	}
	return false
}

// plainInString marks the bytes that stand for themselves in a JSON string.
var plainInString = func() (t [256]bool) {
	for c := ' '; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hex4 returns the code unit of the \uXXXX escape that b starts with, or
// -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unquoteJSON writes the text of s, the inside of a string skipString
// accepted, as encoding/json unquotes it: a surrogate escape that is not
// half of a pair, and each byte of invalid UTF-8, become U+FFFD.
func unquoteJSON(w *strings.Builder, s []byte) {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\':
			switch c := s[i+1]; c {
			case 'b':
				w.WriteByte('\b')
			case 'f':
				w.WriteByte('\f')
			case 'n':
				w.WriteByte('\n')
			case 'r':
				w.WriteByte('\r')
			case 't':
				w.WriteByte('\t')
			case 'u':
				r := hex4(s[i:])
				i += 6
				if utf16.IsSurrogate(r) {
					if pair := utf16.DecodeRune(r, hex4(s[i:])); pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				w.WriteRune(r)
				continue
			default: // " \ /
				w.WriteByte(c)
			}
			i += 2
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(s) && s[j] < utf8.RuneSelf && s[j] != '\\' {
				j++
			}
			w.Write(s[i:j])
			i = j
		default:
			r, size := utf8.DecodeRune(s[i:])
			w.WriteRune(r) // RuneError for invalid UTF-8, as encoding/json writes
			i += size
		}
	}
}

// skipNumber reads a number as RFC 8259 has it.
func (d *wireDecoder) skipNumber() bool {
	b, i := d.data, d.off
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := skipDigits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	d.off = i
	return true
}

// skipDigits returns the offset of the first non-digit of b from i.
func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// integer reads an integer of at most 18 skipDigits that fits in bits bits,
// or a null.
func (d *wireDecoder) integer(bits int) (n int64, null, ok bool) {
	if d.null() {
		return 0, true, true
	}
	start := d.off
	if !d.skipNumber() {
		return 0, false, false
	}
	s := d.data[start:d.off]
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) > 18 {
		return 0, false, false
	}
	for _, c := range s {
		if c < '0' || c > '9' { // a fraction or an exponent
			return 0, false, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if bits < 64 && n != n<<(64-bits)>>(64-bits) {
		return 0, false, false
	}
	return n, false, true
}

func (d *wireDecoder) int(dst *int) bool {
	n, null, ok := d.integer(strconv.IntSize)
	if ok && !null {
		*dst = int(n)
	}
	return ok
}

func (d *wireDecoder) int64(dst *int64) bool {
	n, null, ok := d.integer(64)
	if ok && !null {
		*dst = n
	}
	return ok
}

// str reads a string or a null into *dst, which finish sets.
func (d *wireDecoder) str(dst *string) bool {
	if d.null() {
		return true
	}
	start := d.off
	if d.npend == len(d.pending) || !d.skipString() {
		return false
	}
	d.pending[d.npend] = pendingString{dst, start + 1, d.off - 1}
	d.npend++
	return true
}

// time reads a time or a null with time.Time's UnmarshalJSON, which, as
// encoding/json calls it, takes the string with its quotes and escapes.
func (d *wireDecoder) time(dst *time.Time) bool {
	if d.null() {
		return true
	}
	start := d.off
	return d.skipString() && dst.UnmarshalJSON(d.data[start:d.off]) == nil
}

// strMap reads an object of strings into dst (a pointer to a map of
// strings), as encoding/json does: maps are rare on the wire, so this
// hands the object to encoding/json.
func (d *wireDecoder) strMap(dst any) bool {
	start := d.off
	if !d.skipValue(0) {
		return false
	}
	return json.Unmarshal(d.data[start:d.off], dst) == nil
}

// raw reads any value, null included, as a copy of its bytes.
func (d *wireDecoder) raw(dst *json.RawMessage) bool {
	start := d.off
	if !d.skipValue(0) {
		return false
	}
	*dst = append(json.RawMessage(nil), d.data[start:d.off]...)
	return true
}

// The keys each decoder reads, for unknown to tell the keys that match
// them only case-insensitively (TestWireCoversEveryField checks them
// against the struct tags).
var (
	messageKeys = []string{"v", "id", "function", "queue", "args", "args_ref", "timeout_ms", "max_attempts",
		"created_at", "traceparent", "tracestate", "requires"}
	envelopeKeys = []string{"v", "event", "runner"}
	eventKeys    = []string{"task_id", "function", "queue", "max_attempts", "created_at", "attempt", "phase",
		"runner", "at", "started_at", "error", "result", "result_ref", "next_attempt_at", "traceparent", "tracestate", "matched"}
)

// decodeMessage reads data into m, a zero Message, as json.Unmarshal
// would, or reports false. A key that comes twice is read twice, which
// leaves what encoding/json leaves: the last value, where a null changes
// nothing.
func decodeMessage(data []byte, m *Message) bool {
	d := wireDecoder{data: data}
	d.ws()
	ok := d.object(func(key []byte) bool {
		switch string(key) {
		case "v":
			return d.int(&m.V)
		case "id":
			return d.str(&m.ID)
		case "function":
			return d.str(&m.Function)
		case "queue":
			return d.str(&m.Queue)
		case "args":
			return d.raw(&m.Args)
		case "args_ref":
			return d.str(&m.ArgsRef)
		case "timeout_ms":
			return d.int64(&m.TimeoutMS)
		case "max_attempts":
			return d.int(&m.MaxAttempts)
		case "created_at":
			return d.time(&m.CreatedAt)
		case "traceparent":
			return d.str(&m.Traceparent)
		case "tracestate":
			return d.str(&m.Tracestate)
		case "requires":
			return d.strMap(&m.Requires)
		}
		return d.unknown(key, messageKeys)
	})
	if !ok || !d.end() {
		return false
	}
	d.finish()
	return true
}

// decodeEnvelope reads data as json.Unmarshal would, or reports false. It
// leaves runner heartbeats, which are rare, to encoding/json.
func decodeEnvelope(data []byte) (env envelope, ok bool) {
	d := wireDecoder{data: data}
	d.ws()
	ok = d.object(func(key []byte) bool {
		switch string(key) {
		case "v":
			return d.int(&env.V)
		case "event":
			if d.null() {
				env.Event = nil
				return true
			}
			if env.Event == nil {
				env.Event = new(Event)
			}
			return d.event(env.Event)
		case "runner":
			return false
		}
		return d.unknown(key, envelopeKeys)
	})
	if !ok || !d.end() {
		return envelope{}, false
	}
	d.finish()
	return env, true
}

// event reads an event object into e; a second one for the same e updates
// it, as in encoding/json.
func (d *wireDecoder) event(e *Event) bool {
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "task_id":
			return d.str(&e.TaskID)
		case "function":
			return d.str(&e.Function)
		case "queue":
			return d.str(&e.Queue)
		case "max_attempts":
			return d.int(&e.MaxAttempts)
		case "created_at":
			return d.time(&e.CreatedAt)
		case "attempt":
			return d.int(&e.Attempt)
		case "phase":
			return d.str((*string)(&e.Phase))
		case "runner":
			return d.str(&e.Runner)
		case "at":
			return d.time(&e.At)
		case "started_at":
			return d.time(&e.StartedAt)
		case "error":
			return d.str(&e.Error)
		case "result":
			return d.raw(&e.Result)
		case "result_ref":
			return d.str(&e.ResultRef)
		case "next_attempt_at":
			return d.time(&e.NextAttemptAt)
		case "traceparent":
			return d.str(&e.Traceparent)
		case "tracestate":
			return d.str(&e.Tracestate)
		case "matched":
			return d.strMap(&e.Matched)
		}
		return d.unknown(key, eventKeys)
	})
}

// The API's status documents: EncodeStatus and EncodeStatusList write what
// json.NewEncoder(w).Encode writes, DecodeStatus and DecodeStatusList read
// what json.Unmarshal reads, and ok == false leaves the work to
// encoding/json as above. The strings of one decoded status share one
// allocation.

// EncodeStatus returns what json.NewEncoder(w).Encode(st) writes,
// newline included, or false for the caller to use encoding/json, which
// then also reports any error.
func EncodeStatus(st *Status) (b []byte, ok bool) {
	e := newWireEncoder(statusSize(st) + 1)
	e.status(st)
	e.lit("\n")
	return e.b, e.ok
}

// EncodeStatusList is EncodeStatus for map[string]any{"tasks": sts}, the
// API's list of statuses.
func EncodeStatusList(sts []*Status) (b []byte, ok bool) {
	size := len(`{"tasks":[]}` + "\n")
	for _, st := range sts {
		size += statusSize(st) + 1
	}
	e := newWireEncoder(size)
	e.lit(`{"tasks":`)
	if sts == nil {
		e.lit(`null`)
	} else {
		e.lit(`[`)
		for i, st := range sts {
			if i > 0 {
				e.lit(`,`)
			}
			e.status(st)
		}
		e.lit(`]`)
	}
	e.lit("}\n")
	return e.b, e.ok
}

// statusSize is at least the length of st's encoding if nothing needs
// escaping: 170 bytes for the fields always there, and the keys and
// values of the others.
func statusSize(st *Status) int {
	if st == nil {
		return len(`null`)
	}
	n := 170 + len(st.ID) + len(st.Function) + len(st.Queue) + len(st.State)
	for _, s := range [...]string{st.Runner, st.Error, st.ResultRef, st.IdempotencyKey, st.Next, st.Previous, st.CallbackOf, st.Waiting, st.RequiresText, st.MatchedText} {
		if s != "" {
			n += 20 + len(s)
		}
	}
	if len(st.Result) > 0 {
		n += 10 + len(st.Result)
	}
	if st.Group != nil {
		n += 50 + len(st.Group.ID)
	}
	for _, t := range [...]*time.Time{&st.StartedAt, &st.FinishedAt, &st.NextAttemptAt} {
		if !t.IsZero() {
			n += 60
		}
	}
	return n
}

// status encodes st (null if nil) in the field order of its struct tags.
func (e *wireEncoder) status(st *Status) {
	if st == nil {
		e.lit(`null`)
		return
	}
	e.lit(`{"id":`)
	e.str(st.ID)
	e.lit(`,"function":`)
	e.str(st.Function)
	e.lit(`,"queue":`)
	e.str(st.Queue)
	e.lit(`,"state":`)
	e.str(string(st.State))
	e.lit(`,"attempt":`)
	e.int(int64(st.Attempt))
	e.lit(`,"max_attempts":`)
	e.int(int64(st.MaxAttempts))
	e.lit(`,"created_at":`)
	e.time(st.CreatedAt)
	e.optTime(`,"started_at":`, st.StartedAt)
	e.optTime(`,"finished_at":`, st.FinishedAt)
	e.optStr(`,"runner":`, st.Runner)
	e.optStr(`,"error":`, st.Error)
	e.optRaw(`,"result":`, st.Result)
	e.optStr(`,"result_ref":`, st.ResultRef)
	e.optTime(`,"next_attempt_at":`, st.NextAttemptAt)
	e.optStr(`,"idempotency_key":`, st.IdempotencyKey)
	if g := st.Group; g != nil {
		e.lit(`,"group":{"id":`)
		e.str(g.ID)
		e.lit(`,"index":`)
		e.int(int64(g.Index))
		e.lit(`}`)
	}
	e.optStr(`,"next":`, st.Next)
	e.optStr(`,"previous":`, st.Previous)
	e.optStr(`,"callback_of":`, st.CallbackOf)
	e.strMap(`,"requires":`, st.Requires)
	e.strMap(`,"matched":`, st.Matched)
	e.optStr(`,"waiting":`, st.Waiting)
	e.lit(`}`)
}

// The keys of the status decoders, as messageKeys.
var (
	statusKeys = []string{"id", "function", "queue", "state", "attempt", "max_attempts", "created_at", "started_at",
		"finished_at", "runner", "error", "result", "result_ref", "next_attempt_at", "idempotency_key", "group", "next",
		"previous", "callback_of", "requires", "matched", "waiting"}
	groupRefKeys   = []string{"id", "index"}
	statusListKeys = []string{"tasks"}
)

// DecodeStatus reads data into st, a zero Status, as json.Unmarshal
// would, or reports false and leaves st zero for the caller to use
// json.Unmarshal.
func DecodeStatus(data []byte, st *Status) bool {
	d := wireDecoder{data: data}
	d.ws()
	if !d.status(st) || !d.end() {
		*st = Status{}
		return false
	}
	d.finish()
	return true
}

// DecodeStatusList reads data as json.Unmarshal reads it into a
// struct{ Tasks []*Status `json:"tasks"` }, ignoring other keys, or
// reports false. It leaves a second "tasks", which encoding/json decodes
// into the statuses of the first, to encoding/json.
func DecodeStatusList(data []byte) (sts []*Status, ok bool) {
	d := wireDecoder{data: data}
	d.ws()
	seen := false
	ok = d.object(func(key []byte) bool {
		if string(key) != "tasks" {
			return d.unknown(key, statusListKeys)
		}
		if seen {
			return false
		}
		seen = true
		if d.null() {
			return true
		}
		ok := d.array(func() bool {
			if d.null() {
				sts = append(sts, nil)
				return true
			}
			st := new(Status)
			if !d.status(st) {
				return false
			}
			d.finish()
			d.npend = 0
			sts = append(sts, st)
			return true
		})
		if sts == nil {
			sts = []*Status{}
		}
		return ok
	})
	if !ok || !d.end() {
		return nil, false
	}
	return sts, true
}

// status reads a status object into st.
func (d *wireDecoder) status(st *Status) bool {
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return d.str(&st.ID)
		case "function":
			return d.str(&st.Function)
		case "queue":
			return d.str(&st.Queue)
		case "state":
			return d.str((*string)(&st.State))
		case "attempt":
			return d.int(&st.Attempt)
		case "max_attempts":
			return d.int(&st.MaxAttempts)
		case "created_at":
			return d.time(&st.CreatedAt)
		case "started_at":
			return d.time(&st.StartedAt)
		case "finished_at":
			return d.time(&st.FinishedAt)
		case "runner":
			return d.str(&st.Runner)
		case "error":
			return d.str(&st.Error)
		case "result":
			return d.raw(&st.Result)
		case "result_ref":
			return d.str(&st.ResultRef)
		case "next_attempt_at":
			return d.time(&st.NextAttemptAt)
		case "idempotency_key":
			return d.str(&st.IdempotencyKey)
		case "group":
			if d.null() {
				st.Group = nil
				return true
			}
			if st.Group == nil {
				st.Group = new(GroupRef)
			}
			return d.groupRef(st.Group)
		case "next":
			return d.str(&st.Next)
		case "previous":
			return d.str(&st.Previous)
		case "callback_of":
			return d.str(&st.CallbackOf)
		case "requires":
			return d.strMap(&st.Requires)
		case "matched":
			return d.strMap(&st.Matched)
		case "waiting":
			return d.str(&st.Waiting)
		}
		return d.unknown(key, statusKeys)
	})
}

// groupRef reads a group reference into g.
func (d *wireDecoder) groupRef(g *GroupRef) bool {
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return d.str(&g.ID)
		case "index":
			return d.int(&g.Index)
		}
		return d.unknown(key, groupRefKeys)
	})
}
