"""Context variables carried through a request or a message: they end up in every log line."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
