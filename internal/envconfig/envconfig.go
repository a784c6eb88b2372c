// Package envconfig holds what every Drover main reads the same way: the
// parsing of DROVER_ variables into the main's own config struct, with
// one-line errors naming the variable, and the log settings.
package envconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v10"
)

// Parse fills cfg, a pointer to a struct with env tags, from the
// environment.
func Parse(cfg any) error {
	err := env.Parse(cfg)
	if err == nil {
		return nil
	}
	// env's parse errors name the Go field, not the variable: name the
	// variable, and keep it all on one line.
	var agg env.AggregateError
	if errors.As(err, &agg) {
		msgs := make([]string, len(agg.Errors))
		for i, e := range agg.Errors {
			var pe env.ParseError
			if errors.As(e, &pe) {
				if name := variable(reflect.TypeOf(cfg), pe.Name); name != "" {
					msgs[i] = fmt.Sprintf("%s=%q: %v", name, os.Getenv(name), pe.Err)
					continue
				}
			}
			msgs[i] = e.Error()
		}
		return fmt.Errorf("configuration: %s", strings.ReplaceAll(strings.Join(msgs, "; "), "\n", "; "))
	}
	return fmt.Errorf("configuration: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
}

// variable returns the env tag of the field named field in t, a struct
// or a pointer to one, or in the structs it embeds or holds; "" if none.
func variable(t reflect.Type, field string) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); f.Name == field && key != "" && key != "-" {
			return key
		}
		if f.Type.Kind() != reflect.Struct {
			continue
		}
		if name := variable(f.Type, field); name != "" {
			return name
		}
	}
	return ""
}

// Log is the log settings of a process.
type Log struct {
	Level  string `env:"DROVER_LOG_LEVEL" envDefault:"info"`
	Format string `env:"DROVER_LOG_FORMAT"`
}

// Logger builds the one logger of a process: text for people by default,
// JSON where DROVER_LOG_FORMAT=json (the Lambda entry points' default).
func (l Log) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("DROVER_LOG_LEVEL=%q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.Format {
	case "", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("DROVER_LOG_FORMAT=%q: want text or json", l.Format)
}
