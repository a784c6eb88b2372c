package api

import (
	"context"
	"strings"
	"testing"

	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/internal/envconfig"
)

// TestEnv: each configuration that cannot work stops dispatch at start
// with one line naming the variable to change, whether parsing,
// Validate or opening a URL finds it; the others start.
func TestEnv(t *testing.T) {
	base := map[string]string{
		"DROVER_TASKS_TOPIC": "memq://env-test-tasks", "DROVER_BUCKET": "mem://", "DROVER_STATUS": "mem://env-test/id",
		"DROVER_ADDR": "127.0.0.1:8080", "DROVER_API_KEYS": "", "DROVER_API_KEYS_SECRET": "", "DROVER_API_KEYS_REFRESH": "",
		"DROVER_QUEUE_URLS": "", "DROVER_TASKS_SUBSCRIPTION": "", "DROVER_EVENTS_TOPIC": "", "DROVER_LEASE_QUEUE_URLS": "",
	}
	leasing := func(lease string) map[string]string {
		return map[string]string{
			"DROVER_QUEUE_URLS": `{"gpu":"memq://env-test-gpu"}`, "DROVER_TASKS_SUBSCRIPTION": "memq://env-test-tasks",
			"DROVER_EVENTS_TOPIC": "memq://env-test-events", "DROVER_LEASE_QUEUE_URLS": lease,
		}
	}
	key := "key-0123456789abcdef"
	cases := []struct {
		name    string
		set     map[string]string
		wantVar string // "" for a configuration that starts
	}{
		{"defaults on loopback, no keys", nil, ""},
		{"no tasks topic", map[string]string{"DROVER_TASKS_TOPIC": ""}, "DROVER_TASKS_TOPIC"},
		{"no bucket", map[string]string{"DROVER_BUCKET": ""}, "DROVER_BUCKET"},
		{"no status store", map[string]string{"DROVER_STATUS": ""}, "DROVER_STATUS"},
		{"all interfaces, no keys", map[string]string{"DROVER_ADDR": "0.0.0.0:8080"}, "DROVER_API_KEYS"},
		{"a LAN address, no keys", map[string]string{"DROVER_ADDR": "10.1.2.3:8080"}, "DROVER_API_KEYS"},
		{"no host, no keys", map[string]string{"DROVER_ADDR": ":8080"}, "DROVER_API_KEYS"},
		{"all interfaces with a key", map[string]string{"DROVER_ADDR": "0.0.0.0:8080", "DROVER_API_KEYS": key}, ""},
		{"IPv6 loopback, no keys", map[string]string{"DROVER_ADDR": "[::1]:8080"}, ""},
		{"localhost, no keys", map[string]string{"DROVER_ADDR": "localhost:8080"}, ""},
		{"short key", map[string]string{"DROVER_API_KEYS": key + ",short"}, "DROVER_API_KEYS"},
		{"keys and a secret", map[string]string{"DROVER_API_KEYS": key, "DROVER_API_KEYS_SECRET": "arn:aws:ssm:us-east-1:123456789012:parameter/k"}, "DROVER_API_KEYS_SECRET"},
		{"secret not an ARN", map[string]string{"DROVER_API_KEYS_SECRET": "/drover/api-keys"}, "DROVER_API_KEYS_SECRET"},
		{"secret of another service", map[string]string{"DROVER_API_KEYS_SECRET": "arn:aws:s3:::bucket/keys"}, "DROVER_API_KEYS_SECRET"},
		{"negative key refresh", map[string]string{"DROVER_API_KEYS_SECRET": "arn:aws:ssm:us-east-1:123456789012:parameter/k", "DROVER_API_KEYS_REFRESH": "-1s"}, "DROVER_API_KEYS_REFRESH"},
		{"negative retention", map[string]string{"DROVER_RETENTION": "-1h"}, "DROVER_RETENTION"},
		{"retention not a duration", map[string]string{"DROVER_RETENTION": "a week"}, "DROVER_RETENTION"},
		{"log level", map[string]string{"DROVER_LOG_LEVEL": "loud"}, "DROVER_LOG_LEVEL"},
		{"log format", map[string]string{"DROVER_LOG_FORMAT": "xml"}, "DROVER_LOG_FORMAT"},
		{"tasks topic scheme", map[string]string{"DROVER_TASKS_TOPIC": "nope://tasks"}, "DROVER_TASKS_TOPIC"},
		{"bucket scheme", map[string]string{"DROVER_BUCKET": "nope://b"}, "DROVER_BUCKET"},
		{"status scheme", map[string]string{"DROVER_STATUS": "nope://s/id"}, "DROVER_STATUS"},
		{"leases of a declared queue", leasing(`{"gpu":"memq://env-test-gpu"}`), ""},
		{"leases of an undeclared queue", leasing(`{"grid":"memq://env-test-grid"}`), "DROVER_LEASE_QUEUE_URLS"},
		{"leases of default by the map", leasing(`{"default":"memq://env-test-tasks"}`), "DROVER_LEASE_QUEUE_URLS"},
		{"lease subscription scheme", leasing(`{"gpu":"nope://gpu"}`), "DROVER_LEASE_QUEUE_URLS (gpu)"},
		{"lease queues without the lease endpoints", map[string]string{"DROVER_QUEUE_URLS": `{"gpu":"memq://env-test-gpu"}`, "DROVER_LEASE_QUEUE_URLS": `{"gpu":"memq://env-test-gpu"}`}, "DROVER_LEASE_QUEUE_URLS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range c.set {
				t.Setenv(k, v)
			}
			var e Env
			err := envconfig.Parse(&e)
			if err == nil {
				err = e.Validate()
			}
			if err == nil {
				var srv *Server
				srv, res, oerr := e.Open(context.Background(), nil)
				if oerr == nil {
					_ = srv
					res.Close(nil)
				}
				err = oerr
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
