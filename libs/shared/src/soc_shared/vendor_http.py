"""The one HTTP client base every vendor client (QRadar, XSOAR, ServiceDesk Plus, Cyware) uses.

A vendor client owns one :class:`VendorHttp` per integration and only says *what* to call; this
module decides *how*: timeouts, TLS trust (including a customer's private CA), a concurrency cap
per integration, retries with exponential backoff and full jitter, ``Retry-After``, and turning
every failure into one :class:`VendorError` whose category a person (and the sync scheduler) can
act on. Vendor quirks in error bodies go into an ``error_mapper``, not into new branches here.

Retries never repeat a request that may already have changed something at the vendor: unless the
caller says the request is idempotent, a POST/PATCH is retried only when it certainly was not
processed (connection refused, connect or pool timeout, 429, 503). Searches that vendors expose
as POST (XSOAR ``/incidents/search``) pass ``idempotent=True``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any

import httpx
from loguru import logger
from prometheus_client import Counter, Histogram

from soc_shared.egress import EgressDenied, EgressPolicy
from soc_shared.http_transport import Http1Transport

__all__ = [
    "DEFAULT_TIMEOUT",
    "RetryPolicy",
    "VendorError",
    "VendorErrorCategory",
    "VendorHttp",
    "build_ssl_context",
    "parse_retry_after",
]

VENDOR_REQUESTS = Counter(
    "soc_vendor_requests_total",
    "HTTP exchanges with vendor APIs (every attempt counts once) by outcome: ok or the error category",
    ["vendor", "outcome"],
)
VENDOR_LATENCY = Histogram(
    "soc_vendor_request_seconds",
    "Duration of one HTTP exchange with a vendor API (one attempt, excluding backoff waits)",
    ["vendor"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
VENDOR_RETRIES = Counter(
    "soc_vendor_retries_total",
    "Vendor API requests repeated after a failed attempt, by the failure's category",
    ["vendor", "reason"],
)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=10.0)
DEFAULT_EXPECTED: tuple[int, ...] = (200, 201, 202, 204, 206)

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that say the vendor refused before doing any work: safe to repeat even a POST.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class VendorErrorCategory(StrEnum):
    UNREACHABLE = "unreachable"
    TLS = "tls"
    TIMEOUT = "timeout"
    BAD_CREDENTIALS = "bad_credentials"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    BAD_RESPONSE = "bad_response"
    CLOCK = "clock"
    """Signature, token expiry or time skew between us and the vendor."""
    EGRESS_DENIED = "egress_denied"
    """The URL resolves to an address the egress policy refuses (soc_shared.egress)."""


_RETRYABLE_CATEGORIES = frozenset(
    {
        VendorErrorCategory.UNREACHABLE,
        VendorErrorCategory.TIMEOUT,
        VendorErrorCategory.RATE_LIMITED,
        VendorErrorCategory.SERVER_ERROR,
        VendorErrorCategory.BAD_RESPONSE,
    }
)


class VendorError(Exception):
    """A vendor call failed. ``message`` is for a person and never carries a secret."""

    def __init__(
        self,
        category: VendorErrorCategory | str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        vendor_code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.category = VendorErrorCategory(category)
        self.message = message
        self.status = status
        self.retryable = self.category in _RETRYABLE_CATEGORIES if retryable is None else retryable
        self.vendor_code = vendor_code
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        # Set by VendorHttp: the vendor certainly did no work, so even a POST may be repeated.
        self.not_processed = False

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"VendorError(category={self.category.value!r}, status={self.status!r}, message={self.message!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The error as stored in sync state and answered by test-connection."""
        return {
            "category": self.category.value,
            "message": self.message,
            "status": self.status,
            "retryable": self.retryable,
            "vendor_code": self.vendor_code,
            "retry_after": self.retry_after,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After`` on 429 and 503.

    A ``Retry-After`` longer than ``max_retry_after`` is not waited out in line: the request fails
    at once as ``rate_limited`` with ``retry_after`` set, so the scheduler can postpone the whole
    run instead of holding a lease while sleeping through a vendor's quota window.
    """

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def backoff(self, failed_attempt: int) -> float:
        """Delay after the n-th failed attempt (1-based): uniform in ``0 .. min(max, base * 2^(n-1))``."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (failed_attempt - 1)))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or junk."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def build_ssl_context(verify_tls: bool = True, ca_pem: str | None = None) -> ssl.SSLContext | bool:
    """The ``verify`` argument for httpx.

    With ``ca_pem`` the given CA bundle becomes the *only* trust anchor for this integration: an
    on-premises QRadar signed by the customer's private CA is verified properly instead of anyone
    being tempted to switch verification off.
    """
    if not verify_tls:
        return False
    if not ca_pem or not ca_pem.strip():
        return True
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError, TypeError):
        raise VendorError(
            VendorErrorCategory.TLS,
            "the custom CA certificate is not a valid PEM certificate bundle",
            retryable=False,
        ) from None


def _proxied(base_url: str) -> bool:
    """Whether the environment (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, NO_PROXY) sends requests to
    ``base_url`` through a proxy — what httpx's default transport honours."""
    try:
        url = httpx.URL(base_url)
    except Exception:  # noqa: BLE001 - an unparseable base URL fails later, with a proper error
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.host or "")


def _loggable_path(path: str) -> str:
    """The path alone: query strings may carry signatures or API keys."""
    try:
        return httpx.URL(path).path or "/"
    except Exception:  # noqa: BLE001 - a path we cannot parse is logged as a placeholder, never raw
        return "<unparseable>"


def _tls_reason(exc: BaseException) -> str | None:
    """Why a connection failed in TLS, if it did; walks the exception chain httpx/httpcore build."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verification failed"
        if isinstance(current, ssl.SSLError):
            return current.reason or "TLS handshake failed"
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return "certificate verification failed"
        current = current.__cause__ or current.__context__
    return None


class VendorHttp:
    """One vendor integration's HTTP client: retries, timeouts, TLS trust, concurrency cap, metrics."""

    def __init__(
        self,
        base_url: str,
        *,
        vendor: str,
        integration_id: str,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        query_signer: Callable[[], Mapping[str, str]] | None = None,
        verify_tls: bool = True,
        ca_pem: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_concurrency: int = 4,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        error_mapper: Callable[[httpx.Response], VendorError | None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        egress: EgressPolicy | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.vendor = vendor
        self.integration_id = str(integration_id)
        self.retry = retry or RetryPolicy()
        self._error_mapper = error_mapper
        # Query parameters computed afresh for every attempt (a signature that expires: a retry
        # after a long back-off must not go out with an Expires that has passed). Cheaper than an
        # httpx.Auth that rewrites the URL: the URL is built and parsed once.
        self._query_signer = query_signer
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_concurrency)
        self._log = logger.bind(vendor=vendor, integration_id=self.integration_id)
        if not verify_tls:
            self._log.warning("TLS certificate verification is disabled for this integration")
        verify = build_ssl_context(verify_tls, ca_pem)
        # Egress policy (SOC_EGRESS_ALLOW): checked by the transport on the address it connects to.
        # An injected transport (tests, in-process apps) opens no socket of ours and has none.
        self._egress = (egress or EgressPolicy.from_env()) if transport is None else egress
        self._egress_checked = False
        self._proxied = transport is None and _proxied(base_url)
        if transport is None and not self._proxied:
            # The lean transport: httpx's default one costs ~0.65 ms more CPU per request, which
            # is most of an ingestor's CPU when every record needs a detail call (Cyware alerts).
            # It speaks no proxy protocol: behind an HTTP(S)_PROXY httpx's own transport is kept.
            transport = Http1Transport(
                max_connections=max_concurrency,
                max_keepalive=max_concurrency,
                verify=verify,
                egress=self._egress,
            )
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"User-Agent": f"soc-portal/{vendor}", "Accept": "application/json", **(headers or {})},
            auth=auth,
            verify=verify,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
            follow_redirects=False,
        )
        # The host alone names the vendor in messages: a base URL may carry user:password@.
        self._host = self._client.base_url.host or "the configured base URL"

    async def __aenter__(self) -> VendorHttp:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        expected: Iterable[int] = DEFAULT_EXPECTED,
        idempotent: bool | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request, retrying transient failures; a status outside ``expected`` raises VendorError.

        ``idempotent`` defaults to the method's HTTP semantics (GET, HEAD, OPTIONS, PUT, DELETE).
        ``read_timeout`` overrides the read timeout for one slow call (a large search result).
        """
        response, _ = await self._send(
            method,
            path,
            params=params,
            headers=headers,
            json=json,
            data=data,
            content=content,
            expected=expected,
            idempotent=idempotent,
            read_timeout=read_timeout,
            parse_json=False,
        )
        return response

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        expected: Iterable[int] = DEFAULT_EXPECTED,
        idempotent: bool | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        """Like :meth:`request`, returning the parsed JSON body (None for 204).

        A body that is not JSON is a retryable ``bad_response``: vendors under load do answer 200
        with half a body.
        """
        _, body = await self._send(
            method,
            path,
            params=params,
            headers=headers,
            json=json,
            data=data,
            content=content,
            expected=expected,
            idempotent=idempotent,
            read_timeout=read_timeout,
            parse_json=True,
        )
        return body

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET ``path`` and return its JSON body; keyword arguments as for :meth:`request_json`."""
        return await self.request_json("GET", path, **kwargs)

    async def request_with_json(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        expected: Iterable[int] = DEFAULT_EXPECTED,
        idempotent: bool | None = None,
        read_timeout: float | None = None,
    ) -> tuple[httpx.Response, Any]:
        """Like :meth:`request_json`, also returning the response (for paging headers such as
        QRadar's ``Content-Range``); a garbage body is retried the same way."""
        return await self._send(
            method,
            path,
            params=params,
            headers=headers,
            json=json,
            data=data,
            content=content,
            expected=expected,
            idempotent=idempotent,
            read_timeout=read_timeout,
            parse_json=True,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Any,
        headers: dict[str, str] | None,
        json: Any,
        data: Any,
        content: bytes | str | None,
        expected: Iterable[int],
        idempotent: bool | None,
        read_timeout: float | None,
        parse_json: bool,
    ) -> tuple[httpx.Response, Any]:
        method = method.upper()
        expected_statuses = frozenset(expected)
        repeatable = idempotent if idempotent is not None else method in _IDEMPOTENT_METHODS
        extra: dict[str, Any] = {}
        if read_timeout is not None:
            base = self._client.timeout
            extra["timeout"] = httpx.Timeout(
                connect=base.connect, read=read_timeout, write=base.write, pool=base.pool
            )
        policy = self.retry
        if self._proxied and self._egress is not None and not self._egress_checked:
            # Through a proxy the proxy connects: the destination name is checked here instead.
            url = self._client.base_url
            try:
                await self._egress.admitted_addresses(
                    url.host, url.port or (443 if url.scheme == "https" else 80)
                )
            except EgressDenied as exc:
                raise self._transport_error(exc) from None
            except OSError:
                pass  # unresolvable here: the proxy may still resolve it
            self._egress_checked = True

        for attempt in range(1, policy.attempts + 1):
            started = time.perf_counter()
            response: httpx.Response | None = None
            body: Any = None
            error: VendorError | None
            try:
                async with self._slots:
                    # Timed from here: waiting for a slot is our queue, not the vendor's latency.
                    started = time.perf_counter()
                    response = await self._client.request(
                        method,
                        path,
                        params=params if self._query_signer is None else self._signed(params),
                        headers=headers,
                        json=json,
                        data=data,
                        content=content,
                        **extra,
                    )
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                error = self._transport_error(exc)
            else:
                error = self._status_error(response, expected_statuses)
                if error is None and parse_json:
                    body, error = self._parse_json(response)
            VENDOR_LATENCY.labels(self.vendor).observe(time.perf_counter() - started)
            VENDOR_REQUESTS.labels(self.vendor, "ok" if error is None else error.category.value).inc()

            if error is None:
                assert response is not None
                return response, body

            log_path = _loggable_path(path)  # only now: parsing it costs as much as a request
            error.details.setdefault("method", method)
            error.details.setdefault("path", log_path)
            error.details["attempts"] = attempt
            delay = self._retry_delay(error, attempt, repeatable)
            if delay is None:
                raise error
            VENDOR_RETRIES.labels(self.vendor, error.category.value).inc()
            self._log.bind(
                method=method, path=log_path, attempt=attempt, reason=error.category.value
            ).warning(
                "vendor call {} {} failed on attempt {}/{} ({}); retrying in {:.2f}s",
                method,
                log_path,
                attempt,
                policy.attempts,
                error.category.value,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt either returns or raises")

    def _signed(self, params: Any) -> dict[str, Any]:
        assert self._query_signer is not None
        if params is not None and not isinstance(params, Mapping):
            raise TypeError("a VendorHttp with a query signer takes params as a mapping")
        return {**(params or {}), **self._query_signer()}

    def _retry_delay(self, error: VendorError, attempt: int, repeatable: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        policy = self.retry
        if attempt >= policy.attempts or not error.retryable:
            return None
        if not repeatable and not error.not_processed:
            return None
        if error.retry_after is not None:
            if error.retry_after > policy.max_retry_after:
                return None
            return error.retry_after
        return policy.backoff(attempt)

    def _transport_error(self, exc: Exception) -> VendorError:
        # The exception text is kept out of the error: a protocol error may quote a header value
        # (an API key) and a URL may carry a signed query string. Its type name is enough to debug.
        cause = {"cause": type(exc).__name__}
        C = VendorErrorCategory
        if isinstance(exc, EgressDenied):
            return VendorError(
                C.EGRESS_DENIED,
                f"{self.vendor} at {self._host} resolves to {', '.join(exc.addresses[:4]) or 'no address'}: "
                "internal addresses (loopback, link-local, private) are not allowed for vendor "
                "connections; an operator may admit them with SOC_EGRESS_ALLOW",
                retryable=False,
                details={**cause, "addresses": exc.addresses[:8]},
            )
        if isinstance(exc, httpx.TimeoutException):
            phase = {
                httpx.ConnectTimeout: "connecting",
                httpx.ReadTimeout: "waiting for the response",
                httpx.WriteTimeout: "sending the request",
                httpx.PoolTimeout: "waiting for a free connection",
            }.get(type(exc), "on the request")
            error = VendorError(C.TIMEOUT, f"{self.vendor} at {self._host} timed out {phase}", details=cause)
            error.not_processed = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            return error
        if isinstance(exc, httpx.ConnectError):
            reason = _tls_reason(exc)
            if reason is not None:
                # A certificate does not fix itself in a few seconds: no point in retrying.
                return VendorError(
                    C.TLS,
                    f"TLS verification of {self.vendor} at {self._host} failed ({reason}); "
                    "check the server certificate or provide the CA certificate",
                    retryable=False,
                    details={**cause, "tls_reason": reason},
                )
            error = VendorError(
                C.UNREACHABLE, f"cannot connect to {self.vendor} at {self._host}", details=cause
            )
            error.not_processed = True
            return error
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.LocalProtocolError):
            return VendorError(
                C.INVALID_REQUEST,
                f"the request to {self.vendor} could not be built; check the base URL and credentials format",
                retryable=False,
                details=cause,
            )
        if isinstance(exc, httpx.RemoteProtocolError):
            return VendorError(
                C.BAD_RESPONSE,
                f"{self.vendor} at {self._host} closed the connection mid-response",
                details=cause,
            )
        if isinstance(exc, httpx.ProxyError):
            error = VendorError(
                C.UNREACHABLE, f"the proxy refused the connection to {self.vendor}", details=cause
            )
            error.not_processed = True
            return error
        return VendorError(
            C.UNREACHABLE, f"the connection to {self.vendor} at {self._host} dropped", details=cause
        )

    def _status_error(self, response: httpx.Response, expected: frozenset[int]) -> VendorError | None:
        status = response.status_code
        if status in expected:
            return None
        error: VendorError | None = None
        if self._error_mapper is not None:
            try:
                error = self._error_mapper(response)
            except Exception as exc:  # noqa: BLE001 - a mapper choking on an HTML error page must not hide the status
                self._log.debug(
                    "vendor error mapper failed ({}); using the default mapping", type(exc).__name__
                )
        if error is None:
            error = self._default_error(status)
        if error.status is None:
            error.status = status
        if status in _RETRY_AFTER_STATUSES and error.retry_after is None:
            error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if error.retry_after is not None:
            error.details.setdefault("retry_after", error.retry_after)
        error.not_processed = status in _NOT_PROCESSED_STATUSES
        return error

    def _default_error(self, status: int) -> VendorError:
        C = VendorErrorCategory
        v = self.vendor
        if status == 401:
            return VendorError(C.BAD_CREDENTIALS, f"{v} rejected the credentials (HTTP 401)", status=status)
        if status == 403:
            return VendorError(
                C.PERMISSION,
                f"the {v} credentials lack permission for this operation (HTTP 403)",
                status=status,
            )
        if status == 404:
            return VendorError(
                C.NOT_FOUND,
                f"{v} has no such resource (HTTP 404); check the base URL and API version",
                status=status,
            )
        if status == 429:
            return VendorError(C.RATE_LIMITED, f"{v} is rate limiting requests (HTTP 429)", status=status)
        if 500 <= status <= 599:
            return VendorError(
                C.SERVER_ERROR,
                f"{v} answered with a server error (HTTP {status})",
                status=status,
                retryable=status in _RETRY_STATUSES,
            )
        if 400 <= status <= 499:
            return VendorError(C.INVALID_REQUEST, f"{v} rejected the request (HTTP {status})", status=status)
        hint = "; a redirect usually means a wrong base URL or scheme" if 300 <= status <= 399 else ""
        return VendorError(
            C.BAD_RESPONSE,
            f"{v} answered with unexpected HTTP {status}{hint}",
            status=status,
            retryable=False,
        )

    def _parse_json(self, response: httpx.Response) -> tuple[Any, VendorError | None]:
        if response.status_code == 204 or (response.request.method == "HEAD"):
            return None, None
        try:
            return response.json(), None
        except (ValueError, UnicodeDecodeError):
            return None, VendorError(
                VendorErrorCategory.BAD_RESPONSE,
                f"{self.vendor} answered with a body that is not valid JSON",
                status=response.status_code,
                details={
                    "content_type": response.headers.get("Content-Type", ""),
                    "bytes": len(response.content),
                },
            )
