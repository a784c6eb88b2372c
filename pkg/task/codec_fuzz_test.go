package task

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeMessage: DecodeMessage never panics; it gives what encoding/json
// gives (checkDecodeMessage); it accepts only complete messages of this
// version, rejects everything else as ErrUndecodable, and what it accepts
// survives an encode/decode round trip.
func FuzzDecodeMessage(f *testing.F) {
	id := NewID(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	good, _ := EncodeMessage(&Message{ID: id, Function: "echo", Queue: "default", Args: json.RawMessage(`{"a":1}`),
		TimeoutMS: 1000, MaxAttempts: 3, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	for _, s := range [][]byte{good, nil, []byte(`{}`), []byte(`{"v":2}`), []byte(`not json`), []byte("\xff\xfe")} {
		f.Add(s)
	}
	for _, c := range messageCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeMessage(t, b)
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error %v is not ErrUndecodable", err)
			}
			return
		}
		if m.V != WireVersion || !ValidID(m.ID) || m.Function == "" || m.MaxAttempts < 1 || m.TimeoutMS < 1 {
			t.Fatalf("accepted an incomplete message: %+v", m)
		}
		again, err := EncodeMessage(m)
		if err != nil {
			// Args that are not valid JSON cannot get here: json.Unmarshal
			// validated them.
			t.Fatalf("re-encode accepted message: %v", err)
		}
		m2, err := DecodeMessage(again)
		if err != nil || m2.ID != m.ID || m2.Function != m.Function || m2.TimeoutMS != m.TimeoutMS {
			t.Fatalf("round trip: %+v, %v", m2, err)
		}
		checkEncodeMessage(t, m)
	})
}

// FuzzDecodeEvent: DecodeEvent never panics, gives what encoding/json gives
// (checkDecodeEvent), returns exactly one of event and heartbeat when it
// accepts, and what it accepts can be applied to a status document without
// breaking the terminal rule.
func FuzzDecodeEvent(f *testing.F) {
	id := NewID(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ev, _ := EncodeEvent(&Event{TaskID: id, Function: "echo", Queue: "default", MaxAttempts: 3, Attempt: 1,
		Phase: PhaseSucceeded, Runner: "r", At: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Result: json.RawMessage(`1`)})
	hb, _ := EncodeRunner(&RunnerInfo{ID: "r", Name: "r", Functions: []string{"echo"}})
	for _, s := range [][]byte{ev, hb, nil, []byte(`{"v":1}`), []byte(`{"v":1,"event":{},"runner":{}}`), []byte(`[]`)} {
		f.Add(s)
	}
	for _, c := range eventCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeEvent(t, b)
		e, r, err := DecodeEvent(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) || e != nil || r != nil {
				t.Fatalf("error %v with results %v %v", err, e, r)
			}
			return
		}
		if (e == nil) == (r == nil) {
			t.Fatalf("accepted with event %v and heartbeat %v", e, r)
		}
		if e == nil {
			checkEncodeRunner(t, r)
			return
		}
		checkEncodeEvent(t, e)
		var st Status
		st.Apply(e)
		if st.ID != e.TaskID || !st.State.Valid() {
			t.Fatalf("applied %+v: %+v", e, st)
		}
		if st.State.Terminal() {
			// Terminal never regresses: a later start of any attempt
			// changes nothing.
			later := *e
			later.Phase, later.Attempt = PhaseStarted, e.Attempt+1
			if st.Apply(&later) {
				t.Fatalf("terminal %s regressed to started", st.State)
			}
		}
	})
}
