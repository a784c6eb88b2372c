package task

import (
	"errors"
	"strings"
	"testing"
)

func TestRequiresMatch(t *testing.T) {
	traits := Traits{"python": "3.11", "gpu": "", "os": "linux", "cpus": "8", "cuda": "12.4.1"}
	for _, tt := range []struct {
		name  string
		req   Requires
		unmet string
	}{
		{"none", nil, ""},
		{"flag", Requires{"gpu": ""}, ""},
		{"version at least", Requires{"python": ">=3.10"}, ""},
		{"numeric not lexical", Requires{"python": ">3.9"}, ""},
		{"too old", Requires{"python": ">=3.12"}, "python>=3.12"},
		{"range", Requires{"python": ">=3.10,<4"}, ""},
		{"range excludes", Requires{"python": ">=3,<3.11"}, "python>=3,<3.11"},
		{"exact", Requires{"os": "linux"}, ""},
		{"exact other", Requires{"os": "darwin"}, "os==darwin"},
		{"missing trait", Requires{"tpu": ""}, "tpu"},
		{"several, one unmet", Requires{"gpu": "", "cpus": ">=16"}, "cpus>=16"},
		{"padded version", Requires{"cuda": ">=12.4"}, ""},
		{"not equal", Requires{"os": "!=windows"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			matched, unmet := tt.req.Match(traits)
			if unmet != tt.unmet {
				t.Fatalf("unmet %q, want %q", unmet, tt.unmet)
			}
			if unmet == "" {
				for n := range tt.req {
					if matched[n] != traits[n] {
						t.Errorf("matched[%s] = %q, want %q", n, matched[n], traits[n])
					}
				}
			}
		})
	}
}

func TestRequiresValidate(t *testing.T) {
	for _, tt := range []struct {
		req   Requires
		field string // "" if valid
	}{
		{Requires{"python": ">=3.10", "gpu": ""}, ""},
		{Requires{"python": ">=3.10,<4"}, ""},
		{Requires{"python": ">="}, "requires.python"},
		{Requires{"python": ">=3.10,,"}, "requires.python"},
		{Requires{"python": "=>3"}, "requires.python"},
		{Requires{"python": "3 .1"}, "requires.python"},
		{Requires{"bad name!": ""}, "requires"},
		{Requires{"": ""}, "requires"},
	} {
		err := tt.req.Validate("requires")
		var fe *FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%v: %v", tt.req, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("%v: error %v, want one naming %s", tt.req, err, tt.field)
		}
	}
	sp := Spec{Function: "echo", Requires: Requires{"python": ">>3"}}
	if err := sp.Normalize(); err == nil || !strings.Contains(err.Error(), "requires.python") {
		t.Errorf("Normalize: %v, want an error naming requires.python", err)
	}
}

func TestRequiresTextRoundTrip(t *testing.T) {
	for _, r := range []Requires{{"gpu": ""}, {"python": ">=3.10", "gpu": ""}, {"python": ">=3.10,<4", "os": "linux"}} {
		got := ParseRequiresText(r.String())
		if len(got) != len(r) {
			t.Fatalf("%v → %q → %v", r, r.String(), got)
		}
		for n, c := range r {
			if got[n] != c {
				t.Errorf("%v → %q → %v", r, r.String(), got)
			}
		}
	}
}

func TestParseTraits(t *testing.T) {
	tr, err := ParseTraits(" python=3.11, gpu ,cuda=12")
	if err != nil || tr["python"] != "3.11" || tr["cuda"] != "12" || len(tr) != 3 {
		t.Fatalf("got %v, %v", tr, err)
	}
	if _, ok := tr["gpu"]; !ok {
		t.Fatal("gpu missing")
	}
	if tr.String() != "cuda=12,gpu,python=3.11" {
		t.Errorf("String: %q", tr.String())
	}
	if _, err := ParseTraits("py thon=3"); err == nil {
		t.Error("a bad name was accepted")
	}
}

func TestParseQueueWeights(t *testing.T) {
	ws, err := ParseQueueWeights("critical:6, default:3,low")
	if err != nil || len(ws) != 3 || ws[0] != (QueueWeight{"critical", 6}) || ws[1] != (QueueWeight{"default", 3}) || ws[2] != (QueueWeight{"low", 1}) {
		t.Fatalf("got %v, %v", ws, err)
	}
	if ws, _ := ParseQueueWeights(""); len(ws) != 1 || ws[0].Name != DefaultQueue {
		t.Errorf("empty: %v", ws)
	}
	for _, bad := range []string{"a:0", "a:x", "a,a", "b:2000", "bad name"} {
		if _, err := ParseQueueWeights(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseQueueURLs(t *testing.T) {
	m, err := ParseQueueURLs(`{"gpu":"memq://g","default":"memq://d"}`)
	if err != nil || len(m) != 2 || strings.Join(m.Names(), ",") != "default,gpu" {
		t.Fatalf("got %v, %v", m, err)
	}
	for _, bad := range []string{`[]`, `{}`, `{"a b":"memq://x"}`, `{"a":"nope"}`, `{"a":1}`} {
		if _, err := ParseQueueURLs(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
