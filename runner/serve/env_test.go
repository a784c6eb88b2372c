package serve

import (
	"context"
	"strings"
	"testing"

	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/internal/envconfig"
)

// TestEnv: each configuration that cannot work stops a runner at start
// with one line naming the variable to change, whether parsing, Validate
// or opening a URL finds it; the others start.
func TestEnv(t *testing.T) {
	base := map[string]string{
		"DROVER_TASKS_SUBSCRIPTION": "memq://env-test-tasks", "DROVER_EVENTS_TOPIC": "memq://env-test-events",
		"DROVER_BUCKET": "mem://", "DROVER_STATUS": "mem://env-test/id",
	}
	cases := []struct {
		name    string
		set     map[string]string
		wantVar string // "" for a configuration that starts
	}{
		{"defaults", nil, ""},
		{"no tasks subscription", map[string]string{"DROVER_TASKS_SUBSCRIPTION": ""}, "DROVER_TASKS_SUBSCRIPTION"},
		{"no events topic", map[string]string{"DROVER_EVENTS_TOPIC": ""}, "DROVER_EVENTS_TOPIC"},
		{"no bucket", map[string]string{"DROVER_BUCKET": ""}, "DROVER_BUCKET"},
		{"no status store", map[string]string{"DROVER_STATUS": ""}, "DROVER_STATUS"},
		{"no concurrency", map[string]string{"DROVER_CONCURRENCY": "0"}, "DROVER_CONCURRENCY"},
		{"concurrency too high", map[string]string{"DROVER_CONCURRENCY": "10001"}, "DROVER_CONCURRENCY"},
		{"concurrency not a number", map[string]string{"DROVER_CONCURRENCY": "many"}, "DROVER_CONCURRENCY"},
		{"visibility not above two heartbeats", map[string]string{"DROVER_VISIBILITY": "9s"}, "DROVER_VISIBILITY"},
		{"visibility zero", map[string]string{"DROVER_VISIBILITY": "0s"}, "DROVER_VISIBILITY"},
		{"visibility two heartbeats", map[string]string{"DROVER_VISIBILITY": "10s"}, ""},
		{"lease under two heartbeats", map[string]string{"DROVER_HEARTBEAT": "2s", "DROVER_LEASE": "3s"}, "DROVER_LEASE"},
		{"negative heartbeat", map[string]string{"DROVER_HEARTBEAT": "-1s"}, "DROVER_HEARTBEAT"},
		{"heartbeat not a duration", map[string]string{"DROVER_HEARTBEAT": "often"}, "DROVER_HEARTBEAT"},
		{"log level", map[string]string{"DROVER_LOG_LEVEL": "loud"}, "DROVER_LOG_LEVEL"},
		{"events topic scheme", map[string]string{"DROVER_EVENTS_TOPIC": "nope://e"}, "DROVER_EVENTS_TOPIC"},
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

// start parses, validates and opens a runner configuration, as Run does
// before it takes tasks.
func start() error {
	var e Env
	if err := envconfig.Parse(&e); err != nil {
		return err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	res, err := e.Open(context.Background(), nil)
	if err == nil {
		res.Close(nil)
	}
	return err
}
