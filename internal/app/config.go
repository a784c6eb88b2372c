// Package app wires Drover's parts from configuration: the embedded
// all-in-one (drover dev) and each part as a long-lived process (dispatch,
// runner, collect). The mains read Config once from the environment; the
// Lambda entry points reuse the same opening code.
package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
)

// Config is every DROVER_ variable. Zero values mean the documented
// defaults; the URL defaults apply only to the embedded default (drover dev).
type Config struct {
	TasksTopic         string        `env:"DROVER_TASKS_TOPIC"`
	TasksSubscription  string        `env:"DROVER_TASKS_SUBSCRIPTION"`
	EventsTopic        string        `env:"DROVER_EVENTS_TOPIC"`
	EventsSubscription string        `env:"DROVER_EVENTS_SUBSCRIPTION"`
	DLQSubscription    string        `env:"DROVER_DLQ_SUBSCRIPTION"`
	Bucket             string        `env:"DROVER_BUCKET"`
	Status             string        `env:"DROVER_STATUS"`
	Addr               string        `env:"DROVER_ADDR" envDefault:"127.0.0.1:8080"`
	APIKeys            []string      `env:"DROVER_API_KEYS" envSeparator:","`
	DataDir            string        `env:"DROVER_DATA_DIR" envDefault:".drover"`
	Runners            int           `env:"DROVER_RUNNERS" envDefault:"2"`
	Concurrency        int           `env:"DROVER_CONCURRENCY" envDefault:"8"`
	Heartbeat          time.Duration `env:"DROVER_HEARTBEAT"`
	Lease              time.Duration `env:"DROVER_LEASE"`
	Visibility         time.Duration `env:"DROVER_VISIBILITY" envDefault:"30s"`
	Grace              time.Duration `env:"DROVER_GRACE" envDefault:"30s"`
	Retention          time.Duration `env:"DROVER_RETENTION" envDefault:"168h"`
	RunnerName         string        `env:"DROVER_RUNNER_NAME"`
	// StartedDelay is how long a task runs before its runner publishes
	// its "started" event (runner.Config.StartedDelay: 0 is the 20ms
	// default, negative publishes at once). The Lambda runner publishes
	// at once unless this is set.
	StartedDelay time.Duration `env:"DROVER_STARTED_DELAY"`
	LogLevel     string        `env:"DROVER_LOG_LEVEL" envDefault:"info"`
	LogFormat    string        `env:"DROVER_LOG_FORMAT"`

	// Lambda is set when the process is a Lambda bootstrap: the function
	// URL's IAM auth (or DROVER_API_KEYS) guards it, not a listen address.
	Lambda bool `env:"-"`
}

// Load reads Config from the environment.
func Load() (*Config, error) {
	var c Config
	if err := env.Parse(&c); err != nil {
		// env's errors name the variable; keep them on one line.
		return nil, fmt.Errorf("configuration: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return &c, nil
}

// Part names the process a Config is validated for.
type Part string

// The parts.
const (
	PartDev      Part = "dev"
	PartDispatch Part = "dispatch"
	PartRunner   Part = "runner"
	PartCollect  Part = "collect"
)

// Embedded fills the embedded default's URLs into unset variables: the
// in-process memq queues, a file bucket and a persisted memstore status
// store under DataDir.
func (c *Config) Embedded() error {
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("DROVER_DATA_DIR: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("DROVER_DATA_DIR: %w", err)
	}
	vis := c.Visibility.String()
	def := func(v *string, s string) {
		if *v == "" {
			*v = s
		}
	}
	def(&c.TasksTopic, "memq://tasks")
	def(&c.TasksSubscription, "memq://tasks?visibility="+vis)
	def(&c.EventsTopic, "memq://events")
	def(&c.EventsSubscription, "memq://events?visibility="+vis)
	def(&c.Bucket, "file://"+filepath.ToSlash(filepath.Join(dir, "archive"))+"?create_dir=1&no_tmp_dir=1")
	def(&c.Status, EmbeddedStatusURL("drover", filepath.Join(dir, "status.gob")))
	if c.Heartbeat == 0 {
		c.Heartbeat = time.Second
	}
	return nil
}

// EmbeddedStatusKeep is how many finished tasks the embedded status store
// keeps at most (besides DROVER_RETENTION): beyond it, those finished
// first are dropped. Queued and running tasks are always kept.
const EmbeddedStatusKeep = 100_000

// EmbeddedStatusURL is the embedded default's status store: Drover's
// in-process docstore (pkg/memstore) named name, saved to filename at
// shutdown (none if empty), dropping documents at their expires_at and
// keeping at most EmbeddedStatusKeep finished tasks.
func EmbeddedStatusURL(name, filename string) string {
	u := fmt.Sprintf("memstore://%s/id?expiry_field=expires_at&cap=%d&cap_where=kind:task", name, EmbeddedStatusKeep)
	if filename != "" {
		u += "&filename=" + url.QueryEscape(filename)
	}
	return u
}

// Validate checks what part needs, returning a one-line error that names
// the variable to change.
func (c *Config) Validate(part Part) error {
	need := map[Part][]struct{ name, val string }{
		PartDispatch: {{"DROVER_TASKS_TOPIC", c.TasksTopic}, {"DROVER_BUCKET", c.Bucket}, {"DROVER_STATUS", c.Status}},
		PartRunner:   {{"DROVER_TASKS_SUBSCRIPTION", c.TasksSubscription}, {"DROVER_EVENTS_TOPIC", c.EventsTopic}, {"DROVER_BUCKET", c.Bucket}, {"DROVER_STATUS", c.Status}},
		PartCollect:  {{"DROVER_EVENTS_SUBSCRIPTION", c.EventsSubscription}, {"DROVER_BUCKET", c.Bucket}, {"DROVER_STATUS", c.Status}},
	}
	for _, v := range need[part] {
		if v.val == "" {
			return fmt.Errorf("%s is required for drover %s (see README: Configuration)", v.name, part)
		}
	}
	if c.Runners < 1 {
		return fmt.Errorf("DROVER_RUNNERS=%d: need at least 1", c.Runners)
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		return fmt.Errorf("DROVER_CONCURRENCY=%d: need 1 to 10000", c.Concurrency)
	}
	if c.Heartbeat < 0 || c.Lease < 0 || c.Visibility <= 0 {
		return fmt.Errorf("DROVER_HEARTBEAT, DROVER_LEASE and DROVER_VISIBILITY must be positive durations")
	}
	hb := c.Heartbeat
	if hb == 0 {
		hb = 5 * time.Second
	}
	if c.Lease != 0 && c.Lease < 2*hb {
		return fmt.Errorf("DROVER_LEASE=%s must be at least twice DROVER_HEARTBEAT=%s, or a slow heartbeat lets a running task's message come back", c.Lease, hb)
	}
	if c.Visibility < 2*hb {
		return fmt.Errorf("DROVER_VISIBILITY=%s must be at least twice DROVER_HEARTBEAT=%s: the first heartbeat must extend a message before its visibility timeout ends", c.Visibility, hb)
	}
	if part == PartDev || part == PartDispatch {
		if len(c.APIKeys) == 0 && !loopback(c.Addr) && !c.Lambda {
			return fmt.Errorf("DROVER_ADDR=%s listens beyond loopback, so DROVER_API_KEYS must be set", c.Addr)
		}
		for _, k := range c.APIKeys {
			if len(k) < 16 {
				return fmt.Errorf("DROVER_API_KEYS: every key must be at least 16 characters")
			}
		}
	}
	if _, err := c.Logger(); err != nil {
		return err
	}
	return nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Logger builds the one logger of a process: text for people by default,
// JSON where DROVER_LOG_FORMAT=json (the Lambda entry points' default).
func (c *Config) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("DROVER_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("DROVER_LOG_FORMAT=%q: want text or json", c.LogFormat)
}
