package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/task"
)

// Env is the dispatch process's configuration, read once by its main
// (functions/dispatch, drover dispatch) from DROVER_ variables.
type Env struct {
	TasksTopic string `env:"DROVER_TASKS_TOPIC"`
	// QueueURLs declares the task queues, each its own topic, as a JSON
	// object of names to URLs (task.ParseQueueURLs); "default" may come
	// from TasksTopic instead.
	QueueURLs string        `env:"DROVER_QUEUE_URLS"`
	Bucket    string        `env:"DROVER_BUCKET"`
	Status    string        `env:"DROVER_STATUS"`
	Addr      string        `env:"DROVER_ADDR" envDefault:"127.0.0.1:8080"`
	APIKeys   []string      `env:"DROVER_API_KEYS" envSeparator:","`
	Retention time.Duration `env:"DROVER_RETENTION" envDefault:"168h"`
	Log       envconfig.Log
	// TasksSubscription and EventsTopic, when both are set, make a
	// long-lived dispatcher serve the lease endpoints for remote runners
	// (drover runner --server).
	TasksSubscription string `env:"DROVER_TASKS_SUBSCRIPTION"`
	EventsTopic       string `env:"DROVER_EVENTS_TOPIC"`
	// LeaseQueueURLs are the subscription URLs of the declared queues
	// other than default whose tasks the lease endpoints hand to remote
	// runners (a JSON object of names to URLs, as a runner's
	// DROVER_QUEUE_URLS); each must be declared in QueueURLs.
	LeaseQueueURLs string `env:"DROVER_LEASE_QUEUE_URLS"`

	// APIKeysSecret is the ARN of a Secrets Manager secret or an SSM
	// parameter holding the keys (a JSON array of strings, or keys
	// separated by commas or newlines), read at start and again every
	// APIKeysRefresh (0: only at start) and, at most every 30s, when a
	// request's key matches none; instead of DROVER_API_KEYS.
	APIKeysSecret  string        `env:"DROVER_API_KEYS_SECRET"`
	APIKeysRefresh time.Duration `env:"DROVER_API_KEYS_REFRESH" envDefault:"5m"`

	// Lambda is set when the process is a Lambda bootstrap: the function
	// URL's IAM auth (or DROVER_API_KEYS) guards it, not a listen address.
	Lambda bool `env:"-"`
	// TracerProvider, if set, traces what the part does (nil: off);
	// its main sets it from telemetry.SetupTracing.
	TracerProvider trace.TracerProvider `env:"-"`
}

// Validate checks e, returning a one-line error that names the variable
// to change.
func (e *Env) Validate() error {
	urls, err := task.ParseQueueURLs(e.QueueURLs)
	if err != nil {
		return fmt.Errorf("DROVER_QUEUE_URLS: %w", err)
	}
	if task.Declared(urls, e.TasksTopic) == nil {
		return fmt.Errorf("DROVER_TASKS_TOPIC (or DROVER_QUEUE_URLS) is required for drover dispatch (see README: Configuration)")
	}
	for _, v := range []struct{ name, val string }{
		{"DROVER_BUCKET", e.Bucket}, {"DROVER_STATUS", e.Status},
	} {
		if v.val == "" {
			return fmt.Errorf("%s is required for drover dispatch (see README: Configuration)", v.name)
		}
	}
	// "k1, k2" names k1 and k2: keys are trimmed, empty ones dropped.
	keys := e.APIKeys[:0]
	for _, k := range e.APIKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	e.APIKeys = keys
	if e.APIKeysSecret != "" {
		if len(e.APIKeys) > 0 {
			return fmt.Errorf("DROVER_API_KEYS_SECRET and DROVER_API_KEYS are both set: set one")
		}
		if _, err := parseSecretRef(e.APIKeysSecret); err != nil {
			return err
		}
		if e.APIKeysRefresh < 0 {
			return fmt.Errorf("DROVER_API_KEYS_REFRESH=%s must not be negative", e.APIKeysRefresh)
		}
	}
	if len(e.APIKeys) == 0 && e.APIKeysSecret == "" && !loopback(e.Addr) && !e.Lambda {
		return fmt.Errorf("DROVER_ADDR=%s listens beyond loopback, so DROVER_API_KEYS or DROVER_API_KEYS_SECRET must be set", e.Addr)
	}
	for _, k := range e.APIKeys {
		if len(k) < minKeyLen {
			return fmt.Errorf("DROVER_API_KEYS: every key must be at least %d characters", minKeyLen)
		}
	}
	if e.Retention < 0 {
		return fmt.Errorf("DROVER_RETENTION=%s must not be negative", e.Retention)
	}
	if _, err := e.leaseQueues(); err != nil {
		return err
	}
	_, err = e.Log.Logger()
	return err
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

// Open reads the API keys' secret, if any, opens the tasks topic, the
// archive and the status store and returns the API over them, with what
// to close at the end.
func (e *Env) Open(ctx context.Context, log *slog.Logger) (*Server, *task.Resources, error) {
	cfg, err := e.Config(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg.Metrics = metrics.NewRegistry()
	res := &task.Resources{}
	fail := func(name string, err error) (*Server, *task.Resources, error) {
		res.Close(log)
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	urls, err := task.ParseQueueURLs(e.QueueURLs)
	if err != nil {
		return fail("DROVER_QUEUE_URLS", err)
	}
	if res.Queues, err = task.OpenQueues(ctx, task.Declared(urls, e.TasksTopic)); err != nil {
		if e.QueueURLs == "" {
			return fail("DROVER_TASKS_TOPIC", err)
		}
		return fail("DROVER_QUEUE_URLS", err)
	}
	res.Tasks = res.Queues.Default()
	if res.Archive, err = task.OpenArchive(ctx, e.Bucket); err != nil {
		return fail("DROVER_BUCKET", err)
	}
	if res.Store, err = task.OpenStore(ctx, e.Status); err != nil {
		return fail("DROVER_STATUS", err)
	}
	res.Store.Retention = e.Retention
	cfg.TracerProvider, cfg.Queues = e.TracerProvider, res.Queues
	srv := New(res.Tasks, res.Archive, res.Store, log, cfg)
	if e.TasksSubscription != "" && e.EventsTopic != "" && !e.Lambda {
		if res.Events, err = task.OpenTopic(ctx, e.EventsTopic); err != nil {
			return fail("DROVER_EVENTS_TOPIC", err)
		}
		urls, err := e.leaseQueues()
		if err != nil {
			res.Close(log)
			return nil, nil, err
		}
		opens := map[string]task.Opener{}
		for _, name := range urls.Names() {
			variable := "DROVER_TASKS_SUBSCRIPTION"
			if name != task.DefaultQueue {
				variable = "DROVER_LEASE_QUEUE_URLS (" + name + ")"
			}
			if opens[name], err = task.CheckedOpener(ctx, variable, urls[name]); err != nil {
				res.Close(log)
				return nil, nil, err
			}
		}
		srv.ServeLeases(opens, res.Events, LeaseConfig{})
	}
	return srv, res, nil
}

// leaseQueues returns the subscription URLs of the queues the lease
// endpoints serve: default from DROVER_TASKS_SUBSCRIPTION (if set), the
// others from DROVER_LEASE_QUEUE_URLS, each declared in DROVER_QUEUE_URLS.
func (e *Env) leaseQueues() (task.QueueURLs, error) {
	urls, err := task.ParseQueueURLs(e.LeaseQueueURLs)
	if err != nil {
		return nil, fmt.Errorf("DROVER_LEASE_QUEUE_URLS: %w", err)
	}
	if _, ok := urls[task.DefaultQueue]; ok {
		return nil, fmt.Errorf("DROVER_LEASE_QUEUE_URLS: the default queue's subscription is DROVER_TASKS_SUBSCRIPTION, not here")
	}
	if len(urls) > 0 && (e.TasksSubscription == "" || e.EventsTopic == "") {
		return nil, fmt.Errorf("DROVER_LEASE_QUEUE_URLS is set, so DROVER_TASKS_SUBSCRIPTION and DROVER_EVENTS_TOPIC must be too (the lease endpoints need both)")
	}
	topics, _ := task.ParseQueueURLs(e.QueueURLs) // checked by Validate
	declared := task.Declared(topics, e.TasksTopic)
	for name := range urls {
		if _, ok := declared[name]; !ok {
			return nil, fmt.Errorf("DROVER_LEASE_QUEUE_URLS: queue %s is not declared in DROVER_QUEUE_URLS (declared: %s)", name, strings.Join(declared.Names(), ", "))
		}
	}
	return task.Declared(urls, e.TasksSubscription), nil
}

// Config returns the API's configuration from e: its API keys, read
// from DROVER_API_KEYS_SECRET when it is set (see loadAPIKeys). Every
// process that serves the API builds its Config here, so that none serves
// it without the keys it was given.
func (e *Env) Config(ctx context.Context) (Config, error) {
	cfg := Config{APIKeys: e.APIKeys}
	if e.APIKeysSecret != "" {
		load, keys, err := e.loadAPIKeys(ctx)
		if err != nil {
			return Config{}, err
		}
		cfg.APIKeys, cfg.APIKeysLoader, cfg.APIKeysRefresh = keys, load, e.APIKeysRefresh
	}
	return cfg, nil
}

// loadAPIKeys reads DROVER_API_KEYS_SECRET once (a process that cannot
// read its keys does not start) and returns the loader for later reads.
func (e *Env) loadAPIKeys(ctx context.Context) (KeyLoader, []string, error) {
	ref, err := parseSecretRef(e.APIKeysSecret)
	if err != nil {
		return nil, nil, err
	}
	load, err := secretLoader(ctx, ref)
	if err != nil {
		return nil, nil, fmt.Errorf("DROVER_API_KEYS_SECRET: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keys, err := load(rctx)
	if err != nil {
		return nil, nil, fmt.Errorf("DROVER_API_KEYS_SECRET: %w", err)
	}
	return load, keys, nil
}

// Run serves the API until ctx is done. ready, if not nil, receives the
// bound address.
func Run(ctx context.Context, e *Env, log *slog.Logger, ready func(net.Addr)) error {
	srv, res, err := e.Open(ctx, log)
	if err != nil {
		return err
	}
	defer res.Close(log)
	defer srv.Close()
	return Serve(ctx, e.Addr, srv, log, ready)
}

// Serve serves h on addr until ctx is done, then drains for up to 10s.
// ready, if not nil, receives the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("DROVER_ADDR=%s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if ready != nil {
		ready(l.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("HTTP shutdown", "err", err)
	}
	return nil
}
