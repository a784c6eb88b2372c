// Package envconfig holds what every Drover main reads the same way: the
// parsing of DROVER_ variables into the main's own config struct, with
// one-line errors naming the variable, and the log settings.
package envconfig

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/caarlos0/env/v10"
)

// Parse fills cfg, a pointer to a struct with env tags, from the
// environment.
func Parse(cfg any) error {
	if err := env.Parse(cfg); err != nil {
		// env's errors name the variable; keep them on one line.
		return fmt.Errorf("configuration: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
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
