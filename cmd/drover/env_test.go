package main

import (
	"strings"
	"testing"

	"github.com/droverhq/drover/internal/envconfig"
)

// TestDevEnv: drover dev refuses, with one line naming the variable, a
// configuration of any of its parts that cannot work, and its own.
func TestDevEnv(t *testing.T) {
	cases := []struct {
		name    string
		set     map[string]string
		wantVar string // "" for a configuration that starts
	}{
		{"defaults", nil, ""},
		{"no runners", map[string]string{"DROVER_RUNNERS": "0"}, "DROVER_RUNNERS"},
		{"runners not a number", map[string]string{"DROVER_RUNNERS": "two"}, "DROVER_RUNNERS"},
		{"all interfaces, no keys", map[string]string{"DROVER_ADDR": "0.0.0.0:8080"}, "DROVER_API_KEYS"},
		{"visibility under two heartbeats", map[string]string{"DROVER_VISIBILITY": "1500ms"}, "DROVER_VISIBILITY"},
		{"negative retention", map[string]string{"DROVER_RETENTION": "-1s"}, "DROVER_RETENTION"},
		{"log format", map[string]string{"DROVER_LOG_FORMAT": "xml"}, "DROVER_LOG_FORMAT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DROVER_DATA_DIR", t.TempDir())
			for k, v := range c.set {
				t.Setenv(k, v)
			}
			e := &devEnv{}
			err := envconfig.Parse(e)
			if err == nil {
				err = e.embed()
			}
			if err == nil {
				err = e.validate()
			}
			switch {
			case c.wantVar == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantVar != "" && err == nil:
				t.Fatalf("started; want an error naming %s", c.wantVar)
			case err != nil && (!strings.Contains(err.Error(), c.wantVar) || strings.Contains(err.Error(), "\n")):
				t.Fatalf("error %q: want one line naming %s", err, c.wantVar)
			}
		})
	}
}
