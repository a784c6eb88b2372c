package telemetry

import (
	"testing"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

func TestQuiet(t *testing.T) {
	if !otelDefault(otel.GetTracerProvider()) || !otelDefault(otel.GetMeterProvider()) {
		t.Fatalf("OpenTelemetry's default providers (%T, %T) are not recognised: Quiet would do nothing",
			otel.GetTracerProvider(), otel.GetMeterProvider())
	}
	Quiet()
	if _, ok := otel.GetTracerProvider().(tracenoop.TracerProvider); !ok {
		t.Errorf("tracer provider is %T, want the no-op one", otel.GetTracerProvider())
	}
	if _, ok := otel.GetMeterProvider().(metricnoop.MeterProvider); !ok {
		t.Errorf("meter provider is %T, want the no-op one", otel.GetMeterProvider())
	}
	// A provider the program installed is left alone.
	if otelDefault(tracenoop.NewTracerProvider()) {
		t.Error("an installed provider counts as the default")
	}
}
