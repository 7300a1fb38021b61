"""OpenTelemetry tracer and meter, with W3C trace context carried over HTTP and AMQP headers."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_configured = False


def setup_telemetry(service: str, exporter: str = "none", endpoint: str = "http://127.0.0.1:4318") -> None:
    """Install the SDK providers once. ``exporter``: none | console | otlp (HTTP/protobuf)."""
    global _configured
    if _configured:
        return
    resource = Resource.create({"service.name": service, "service.namespace": "soc-portal"})
    tracer_provider = TracerProvider(resource=resource)
    readers = []
    if exporter == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        )
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    _configured = True


def tracer(name: str = "soc") -> trace.Tracer:
    return trace.get_tracer(name)


def meter(name: str = "soc") -> metrics.Meter:
    return metrics.get_meter(name)


def inject(carrier: MutableMapping[str, Any] | None = None) -> MutableMapping[str, Any]:
    """Write the current trace context (``traceparent``/``tracestate``) into headers."""
    carrier = {} if carrier is None else carrier
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, Any]) -> otel_context.Context:
    return propagate.extract({k: str(v) for k, v in carrier.items() if isinstance(v, str | bytes)})


def current_traceparent() -> str | None:
    return inject({}).get("traceparent")
