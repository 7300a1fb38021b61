"""Loguru set up once per process: JSON lines outside dev, request id and trace id in every line,
and secrets scrubbed before anything is written."""

from __future__ import annotations

import json
import logging as std_logging
import re
import sys
from collections.abc import Callable
from typing import Any

from loguru import logger
from opentelemetry import trace

from soc_shared.context import request_id_var

_SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|authtoken|signature|cookie|credential)", re.I
)
_SECRET_INLINE = re.compile(
    r"(?i)((?:password|secret|token|api[_-]?key|authtoken|signature|authorization)[\"']?\s*[:=]\s*[\"']?)([^\s\"',&}]+)"
)
_BEARER = re.compile(r"(?i)(bearer\s+|basic\s+|zoho-oauthtoken\s+)[A-Za-z0-9._~+/=-]+")


def scrub(value: Any) -> Any:
    """Replace anything that looks like a secret in a structure or a string with ``***``."""
    if isinstance(value, dict):
        return {
            k: ("***" if isinstance(k, str) and _SECRET_KEYS.search(k) else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _BEARER.sub(r"\1***", _SECRET_INLINE.sub(r"\1***", value))
    return value


def _patch(record: dict[str, Any]) -> None:
    record["extra"].setdefault("request_id", request_id_var.get())
    span = trace.get_current_span().get_span_context()
    record["extra"]["trace_id"] = format(span.trace_id, "032x") if span.is_valid else None
    record["message"] = scrub(record["message"])
    record["extra"] = scrub(record["extra"])


def _json_sink_factory(service: str) -> Callable[[Any], None]:
    def sink(message: Any) -> None:
        record = message.record
        out = {
            "ts": record["time"].isoformat(),
            "level": record["level"].name,
            "service": service,
            "message": record["message"],
            "logger": record["name"],
            **{k: v for k, v in record["extra"].items() if v is not None},
        }
        if record["exception"] is not None:
            exc = record["exception"]
            out["exception"] = f"{exc.type.__name__ if exc.type else 'Exception'}: {scrub(str(exc.value))}"
        sys.stderr.write(json.dumps(out, default=str) + "\n")

    return sink


class _InterceptHandler(std_logging.Handler):
    """Route the standard library's logging (uvicorn, aio-pika, alembic) into loguru."""

    def emit(self, record: std_logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    logger.remove()
    logger.configure(patcher=_patch, extra={"service": service})  # type: ignore[arg-type]
    if json_lines:
        logger.add(_json_sink_factory(service), level=level.upper(), backtrace=False, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=level.upper(),
            backtrace=False,
            diagnose=False,
            format="<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>"
            + service
            + "</cyan> {extra[request_id]} | <level>{message}</level>",
        )
    std_logging.basicConfig(handlers=[_InterceptHandler()], level=std_logging.INFO, force=True)
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore", "uvicorn.access"):
        std_logging.getLogger(noisy).setLevel(std_logging.WARNING)
