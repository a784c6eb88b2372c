package collector_test

import (
	"context"
	"strings"
	"testing"

	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/internal/envconfig"
)

// TestEnv: each configuration that cannot work stops collect at start
// with one line naming the variable to change, whether parsing, Validate
// or opening a URL finds it; the others start.
func TestEnv(t *testing.T) {
	base := map[string]string{
		"DROVER_EVENTS_SUBSCRIPTION": "memq://env-test-events", "DROVER_BUCKET": "mem://", "DROVER_STATUS": "mem://env-test/id",
	}
	cases := []struct {
		name    string
		set     map[string]string
		wantVar string // "" for a configuration that starts
	}{
		{"defaults", nil, ""},
		{"no events subscription", map[string]string{"DROVER_EVENTS_SUBSCRIPTION": ""}, "DROVER_EVENTS_SUBSCRIPTION"},
		{"no bucket", map[string]string{"DROVER_BUCKET": ""}, "DROVER_BUCKET"},
		{"no status store", map[string]string{"DROVER_STATUS": ""}, "DROVER_STATUS"},
		{"negative retention", map[string]string{"DROVER_RETENTION": "-1h"}, "DROVER_RETENTION"},
		{"retention not a duration", map[string]string{"DROVER_RETENTION": "a week"}, "DROVER_RETENTION"},
		{"log level", map[string]string{"DROVER_LOG_LEVEL": "loud"}, "DROVER_LOG_LEVEL"},
		{"log format", map[string]string{"DROVER_LOG_FORMAT": "xml"}, "DROVER_LOG_FORMAT"},
		{"bucket scheme", map[string]string{"DROVER_BUCKET": "nope://b"}, "DROVER_BUCKET"},
		{"status scheme", map[string]string{"DROVER_STATUS": "nope://s/id"}, "DROVER_STATUS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range c.set {
				t.Setenv(k, v)
			}
			err := start()
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

// start parses, validates and opens a collect configuration, as the main
// does before it runs.
func start() error {
	var e collector.Env
	if err := envconfig.Parse(&e); err != nil {
		return err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	_, res, err := e.Open(context.Background(), nil)
	if err == nil {
		res.Close(nil)
	}
	return err
}
