"""Prometheus series of the gateway, next to the request series every service has."""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_RESPONSES = Counter(
    "soc_gateway_upstream_responses_total", "Responses relayed from upstreams", ["upstream", "status"]
)
UPSTREAM_LATENCY = Histogram(
    "soc_gateway_upstream_seconds",
    "Time from sending a request upstream to its response headers",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_FAILURES = Counter(
    "soc_gateway_upstream_failures_total", "Upstream requests that got no response", ["upstream", "reason"]
)
UPSTREAM_RETRIES = Counter(
    "soc_gateway_upstream_retries_total", "Idempotent requests retried after a connect error", ["upstream"]
)
REJECTED = Counter("soc_gateway_rejected_total", "Requests the gateway answered itself", ["reason"])
WEBSOCKETS_OPEN = Gauge("soc_gateway_websockets_open", "WebSocket connections being relayed")
OPENAPI_UPSTREAM_OK = Gauge(
    "soc_gateway_openapi_upstream_ok",
    "1 when the last OpenAPI fetch from the upstream succeeded",
    ["upstream"],
)


# Label look-ups cost more than the observation; the label sets here are few and fixed.
@cache
def upstream_latency(upstream: str) -> Histogram:
    return UPSTREAM_LATENCY.labels(upstream)


@cache
def upstream_responses(upstream: str, status: int) -> Counter:
    return UPSTREAM_RESPONSES.labels(upstream, str(status))
