package main

import (
	"context"
	"log/slog"
	"net"
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
		{"no local runners (remote ones only)", map[string]string{"DROVER_RUNNERS": "0"}, ""},
		{"negative runners", map[string]string{"DROVER_RUNNERS": "-1"}, "DROVER_RUNNERS"},
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

// TestDevAPIKeysSecretUnreadable: drover dev with DROVER_API_KEYS_SECRET
// reads its keys before it serves anything; a secret it cannot read stops
// it, naming the variable, instead of serving with no keys.
func TestDevAPIKeysSecretUnreadable(t *testing.T) {
	t.Setenv("DROVER_DATA_DIR", t.TempDir())
	t.Setenv("DROVER_ADDR", "0.0.0.0:0")
	t.Setenv("DROVER_API_KEYS_SECRET", "arn:aws:ssm:us-east-1:123456789012:parameter/drover/api-keys")
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
		"AWS_SECRET_ACCESS_KEY": "test", "AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true"} {
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
	if err != nil {
		t.Fatalf("refused before start: %v", err)
	}
	served := false
	err = runDev(context.Background(), e, slog.New(slog.DiscardHandler), nil, func(net.Addr) { served = true })
	if err == nil || served || !strings.HasPrefix(err.Error(), "DROVER_API_KEYS_SECRET: ") {
		t.Fatalf("runDev = %v (served %v); want it to stop before serving, naming DROVER_API_KEYS_SECRET", err, served)
	}
}
