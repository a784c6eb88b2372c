package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is a process's trace export: the provider the parts take as
// their TracerProvider (nil when tracing is off) and how to flush it.
type Tracing struct {
	// Provider is nil when OTEL_EXPORTER_OTLP_ENDPOINT (or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is unset: the parts then start
	// no spans at all.
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Shutdown flushes the spans not yet exported and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Enabled reports whether the OpenTelemetry variables ask for traces to be
// exported.
func Enabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// SetupTracing exports traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and otherwise does
// nothing but Quiet. The exporter reads the standard OTEL_EXPORTER_OTLP_*
// variables (headers, timeout, TLS); OTEL_EXPORTER_OTLP_PROTOCOL (or
// _TRACES_PROTOCOL) picks http/protobuf (the default) or grpc;
// OTEL_SERVICE_NAME (default service) and OTEL_RESOURCE_ATTRIBUTES name
// the process; OTEL_TRACES_SAMPLER chooses the sampler. The provider is
// also installed as OpenTelemetry's global one, with the W3C trace
// context propagator, so that the spans a user's function starts from
// its context are exported with Drover's (and gocloud's own spans too).
func SetupTracing(ctx context.Context, service string) (*Tracing, error) {
	if !Enabled() {
		Quiet()
		return &Tracing{}, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.TrimSpace(proto) {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: Drover exports traces over http/protobuf or grpc", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(semconv.ServiceName(service)))
	if err == nil {
		// The variables win over the default name.
		var env *resource.Resource
		if env, err = resource.New(ctx, resource.WithFromEnv()); err == nil {
			res, err = resource.Merge(res, env)
		}
	}
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if otelDefault(otel.GetMeterProvider()) {
		Quiet() // the meter provider only: the tracer provider is set
	}
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

// Flush shuts t down within 5 seconds at the end of a process, logging
// what it could not export.
func Flush(ctx context.Context, t *Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("could not export the last spans", "err", err)
	}
}
