"""Cyware CSAP REST API client (on the shared vendor HTTP base).

What it knows about CSAP, and nothing else:

* **Signed requests.** Every request carries the query parameters ``AccessID``, ``Expires`` (unix
  seconds, now + a short window) and ``Signature = base64(HMAC-SHA1(secret_key, "<AccessID>\\n<Expires>"))``,
  URL-encoded. Cyware documents a signature as valid for at most 30 s from issue, and a server
  enforcing that refuses anything signed further ahead, so the window defaults to 20 s (the
  original product's margin; configurable, at most 30 s). :class:`CywareSigner` signs each
  *attempt* afresh (VendorHttp's ``query_signer``; it is an ``httpx.Auth`` too): a retry after a
  back-off never goes out with an ``Expires`` that has already passed. The clock is injectable
  (tests skew it).
* **Errors.** CSAP answers ``{"detail", "code"}``; :func:`cyware_error` turns that into categories a
  person can act on. An expired signature, or one dated too far ahead, is a *clock* problem: the
  server's time is read from its answer (``server_time``, else the ``Date`` header) and the error
  names the skew in seconds and which clock is ahead.
* **Alerts, incrementally.** ``list_alert/`` is ordered by ``published_time`` ascending, filtered by
  an inclusive ``start_time`` and paged by page number. :meth:`CywareClient.alert_chunks` pages it by
  keyset instead: every request starts at the last second handed out (re-read on purpose: more
  alerts may share that second, and a late alert published "at" it lands there) and skips the short
  ids already handed out at that second, so nothing is skipped or repeated even while alerts are
  being published. Details of each new alert are fetched concurrently (``VendorHttp``'s
  ``max_concurrency`` bounds the requests in flight), and the next chunk is fetched while the caller
  publishes this one.

Retries, timeouts and TLS trust are the shared :class:`VendorHttp`'s job.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from loguru import logger
from prometheus_client import Counter
from soc_shared.vendor_http import VendorError, VendorErrorCategory, VendorHttp

C = VendorErrorCategory
API_PREFIX = "api/csap/v1"
MAX_PAGE_SIZE = 1000  # CSAP clamps larger page sizes to this
DEFAULT_SIGNATURE_WINDOW = 20  # seconds an Expires lies ahead (Cyware: valid at most 30 s from issue)
MAX_SIGNATURE_WINDOW = 30

MISSING_DETAILS = Counter(
    "soc_threatintel_alert_details_missing_total",
    "Listed Cyware alerts whose detail answered 404 (deleted meanwhile): skipped",
)

Clock = Callable[[], float]
JSON = dict[str, Any]


def signature(access_id: str, secret_key: str, expires: int | str) -> str:
    """``base64(HMAC-SHA1(secret_key, "<AccessID>\\n<Expires>"))`` — the CSAP request signature."""
    digest = hmac.new(secret_key.encode(), f"{access_id}\n{expires}".encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class CywareSigner(httpx.Auth):
    """Adds ``AccessID``, ``Expires`` and ``Signature`` to every request attempt.

    The signature goes in the query string (as CSAP wants it), so the URL of a signed request is a
    credential until ``Expires``: VendorHttp logs paths only, and nothing here logs a URL.
    """

    def __init__(
        self,
        access_id: str,
        secret_key: str,
        *,
        window_seconds: int = DEFAULT_SIGNATURE_WINDOW,
        clock: Clock = time.time,
    ) -> None:
        if not 1 <= window_seconds <= MAX_SIGNATURE_WINDOW:
            raise ValueError(f"the signature window must be 1 to {MAX_SIGNATURE_WINDOW} seconds")
        self.access_id = access_id
        self._secret_key = secret_key
        self.window_seconds = window_seconds
        self.clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"CywareSigner(access_id={self.access_id!r}, window_seconds={self.window_seconds})"

    def params(self) -> dict[str, str]:
        expires = int(self.clock()) + self.window_seconds
        return {
            "AccessID": self.access_id,
            "Expires": str(expires),
            "Signature": signature(self.access_id, self._secret_key, expires),
        }

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # httpx percent-encodes the values ("+", "/" and "=" of the base64 signature included).
        request.url = request.url.copy_merge_params(self.params())
        yield request


def _server_time(body: JSON, response: httpx.Response) -> int | None:
    """The vendor's clock: ``server_time`` in the error body, else the ``Date`` header."""
    value = body.get("server_time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    try:
        return int(parsedate_to_datetime(response.headers["Date"]).timestamp())
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock_error(
    code: str, body: JSON, response: httpx.Response, clock: Clock, margin: int | None
) -> VendorError:
    ours = int(clock())
    server = _server_time(body, response)
    details: JSON = {"reason": code, "our_time": ours}
    if server is None:
        comparison = f"our clock says {_iso(ours)}; compare it with the Cyware server's"
    else:
        skew = ours - server
        details.update(server_time=server, clock_skew_seconds=skew)
        direction = "behind" if skew < 0 else "ahead of"
        comparison = (
            f"the Cyware server time is {_iso(server)} but our clock says {_iso(ours)} "
            f"({abs(skew)} s {direction} the server)"
        )
    window = f" (each request is signed valid for {margin} s)" if margin else ""
    if code == "expires_too_far":
        what = "Cyware refused the request: its Expires is too far in the future"
    else:
        what = "Cyware refused the request signature as expired"
    return VendorError(
        C.CLOCK,
        f"{what}: {comparison}{window}; synchronise this host's clock (NTP)",
        status=response.status_code,
        vendor_code=code,
        retryable=False,
        details=details,
    )


def cyware_error(
    response: httpx.Response, *, clock: Clock = time.time, margin: int | None = None
) -> VendorError | None:
    """CSAP's error body ``{"detail", "code", ...}`` → a categorised error (None: default mapping).

    401 codes: ``invalid_signature`` (wrong secret key) and ``unknown_access_id`` are bad
    credentials; ``signature_expired`` / ``expires_too_far`` are a clock problem, not a credential
    one (CSAP checks the signature before the time window); ``invalid_expires`` is our bug. A 401
    without a code whose detail says "expired" is treated as the clock problem too.
    """
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    status = response.status_code
    code = str(body.get("code") or "")
    detail = str(body.get("detail") or body.get("message") or "no detail").strip()[:300]
    suffix = f" (HTTP {status}" + (f", code {code})" if code else ")") + f": {detail}"
    if status == 401:
        if code in ("signature_expired", "expires_too_far") or (not code and "expired" in detail.lower()):
            return _clock_error(code or "signature_expired", body, response, clock, margin)
        if code == "invalid_signature":
            text = "Cyware rejected the request signature: the secret key does not belong to this access id"
        elif code == "unknown_access_id":
            text = "Cyware does not know this access id"
        elif code == "invalid_expires":
            return VendorError(
                C.INVALID_REQUEST,
                "Cyware rejected the Expires parameter" + suffix,
                status=status,
                vendor_code=code,
                retryable=False,
            )
        else:
            text = "Cyware rejected the credentials (access id / secret key)"
        return VendorError(
            C.BAD_CREDENTIALS,
            text + suffix,
            status=status,
            vendor_code=code or None,
            details={"reason": code} if code else {},
        )
    if status == 403:
        return VendorError(
            C.PERMISSION,
            "the Cyware API credentials lack permission for this endpoint" + suffix,
            status=status,
            vendor_code=code or None,
        )
    if status == 404:
        return VendorError(
            C.NOT_FOUND,
            "Cyware has no such endpoint or record; check the base URL" + suffix,
            status=status,
            vendor_code=code or None,
        )
    if status == 429:
        return VendorError(
            C.RATE_LIMITED, "Cyware is throttling requests" + suffix, status=status, vendor_code=code or None
        )
    if status in (400, 405, 409, 422):
        return VendorError(
            C.INVALID_REQUEST, "Cyware rejected the request" + suffix, status=status, vendor_code=code or None
        )
    return None


# ------------------------------------------------------------------------------------ alert keyset
@dataclass(frozen=True, slots=True)
class AlertPosition:
    """A keyset position in CSAP's (published_time, publication order) listing.

    ``published_time`` is the last second handed out (None: nothing yet) and ``short_ids`` the
    alerts handed out at that second. The next read starts *at* that second (``start_time`` is
    inclusive) and skips exactly those ids, so more alerts at the same second are neither skipped
    nor handed out twice. ``since`` (first run only) is where to start when nothing was handed out.
    """

    published_time: int | None = None
    short_ids: tuple[str, ...] = ()
    since: int | None = None

    @classmethod
    def from_cursor(
        cls, cursor: dict[str, Any] | None, *, since: int | None = None, overlap_seconds: int = 0
    ) -> AlertPosition:
        if not cursor or cursor.get("published_time") is None:
            return cls(since=since)
        t = int(cursor["published_time"])
        if overlap_seconds > 0:
            # Re-read a window before the cursor (late, back-dated alerts): ids at the cursor second
            # are no longer enough to dedupe, so what is re-read is re-published (same event ids).
            return cls(since=t - overlap_seconds)
        return cls(t, tuple(str(i) for i in cursor.get("short_ids") or ()))

    def to_cursor(self) -> dict[str, Any]:
        return {"published_time": self.published_time, "short_ids": list(self.short_ids)}

    @property
    def start_time(self) -> int | None:
        return self.published_time if self.published_time is not None else self.since

    def is_new(self, alert: JSON) -> bool:
        t = alert_time(alert)
        if self.published_time is None or t is None:
            return True
        if t != self.published_time:
            return t > self.published_time
        return str(alert.get("short_id")) not in self.short_ids

    def advanced(self, alerts: Iterable[JSON]) -> AlertPosition:
        """The position after handing out ``alerts`` (in listing order)."""
        t, ids = self.published_time, list(self.short_ids)
        for alert in alerts:
            at = alert_time(alert)
            if at is None or (t is not None and at < t):
                continue  # out of the vendor's order: handed out, but it cannot move the keyset back
            if at != t:
                t, ids = at, []
            ids.append(str(alert.get("short_id")))
        return AlertPosition(t, tuple(ids), self.since)


def alert_time(alert: JSON) -> int | None:
    value = alert.get("published_time")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


@dataclass
class AlertChunk:
    """New alerts of one list page, in listing order, with their details (None: detail vanished)."""

    summaries: list[JSON]
    details: list[JSON | None]
    position: AlertPosition


# -------------------------------------------------------------------------------------- the client
class CywareClient:
    """One integration's CSAP API: access id + secret key, ``Expires`` = clock() + window."""

    def __init__(
        self,
        base_url: str,
        *,
        integration_id: str,
        access_id: str,
        secret_key: str,
        signature_window_seconds: int = DEFAULT_SIGNATURE_WINDOW,
        clock: Clock = time.time,
        page_size: int = 500,
        verify_tls: bool = True,
        ca_pem: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **http_options: Any,
    ) -> None:
        if not access_id or not secret_key:
            raise ValueError("Cyware needs an access id and a secret key")
        root = base_url.rstrip("/")
        if not root.endswith("/" + API_PREFIX):
            root += "/" + API_PREFIX
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        self.clock = clock
        self.signer = CywareSigner(
            access_id, secret_key, window_seconds=signature_window_seconds, clock=clock
        )
        self.options: Any = None  # the integration's sync options (set by resources.client_for)
        self.http = VendorHttp(
            root + "/",
            vendor="cyware",
            integration_id=integration_id,
            query_signer=self.signer.params,
            verify_tls=verify_tls,
            ca_pem=ca_pem,
            transport=transport,
            error_mapper=lambda r: cyware_error(r, clock=clock, margin=signature_window_seconds),
            **http_options,
        )

    async def aclose(self) -> None:
        await self.http.close()

    async def _list(self, path: str) -> list[JSON]:
        body = await self.http.get_json(path)
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            body = body["data"]  # tolerate the {"data": [...]} envelope list_alert uses
        if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
            raise VendorError(C.BAD_RESPONSE, f"Cyware {path} did not answer a list of objects")
        return body

    # ------------------------------------------------------------------------- reference data
    async def tags(self) -> list[JSON]:
        return await self._list("tag/")

    async def recipient_groups(self) -> list[JSON]:
        return await self._list("list_recipient_group/")

    async def additional_fields(self) -> list[JSON]:
        """``[{key: "system" | <custom>, values: [field, ...]}]``."""
        return await self._list("list_additional_fields/")

    async def categories(self) -> list[JSON]:
        return await self._list("list_category/")

    # ----------------------------------------------------------------------------------- alerts
    async def list_alerts(
        self,
        *,
        page: int = 1,
        page_size: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> tuple[list[JSON], int | None, bool]:
        """One ``list_alert/`` page: (alerts, count, whether a next page exists)."""
        params: dict[str, Any] = {"page": page, "page_size": page_size or self.page_size}
        if start_time is not None:
            params["start_time"] = start_time
        if end_time is not None:
            params["end_time"] = end_time
        body = await self.http.get_json("list_alert/", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise VendorError(
                C.BAD_RESPONSE, "Cyware list_alert did not answer {count, next, previous, data}"
            )
        data = [a for a in body["data"] if isinstance(a, dict) and a.get("short_id")]
        if len(data) != len(body["data"]):
            raise VendorError(C.BAD_RESPONSE, "Cyware list_alert answered an alert without a short_id")
        count = body.get("count")
        return data, int(count) if isinstance(count, int) else None, bool(body.get("next"))

    async def alert_detail(self, short_id: str) -> JSON | None:
        """The full alert; None when it no longer exists (deleted between listing and reading)."""
        try:
            body = await self.http.get_json(f"get_alert_detail/{short_id}/")
        except VendorError as exc:
            if exc.category is C.NOT_FOUND:
                return None
            raise
        if not isinstance(body, dict) or not body.get("short_id"):
            raise VendorError(C.BAD_RESPONSE, "Cyware get_alert_detail did not answer an alert object")
        return body

    async def alert_details(self, short_ids: Sequence[str]) -> list[JSON | None]:
        """Details of many alerts, concurrently (VendorHttp caps the requests in flight). Every
        request finishes before the first failure is raised (itself, so its category survives)."""
        results = await asyncio.gather(*(self.alert_detail(s) for s in short_ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        missing = [s for s, r in zip(short_ids, results, strict=True) if r is None]
        if missing:
            MISSING_DETAILS.inc(len(missing))
            logger.warning(
                "Cyware alert detail not found for {} listed alert(s) (deleted meanwhile?): {}",
                len(missing),
                ", ".join(missing[:10]),
            )
        return results  # type: ignore[return-value]

    async def _chunk(
        self, position: AlertPosition, start: int | None, page: int, page_size: int
    ) -> tuple[AlertChunk, tuple[int | None, int] | None]:
        alerts, _, has_next = await self.list_alerts(page=page, page_size=page_size, start_time=start)
        new = [a for a in alerts if position.is_new(a)]
        after = position.advanced(new)
        following: tuple[int | None, int] | None = None
        if has_next:
            if after.published_time is not None and after.published_time != start:
                # Restart the keyset at the new boundary second; it is re-read, its handed-out ids
                # skipped. Only when one second holds more than a page is a later page needed.
                following = (after.published_time, 1 + len(after.short_ids) // page_size)
            else:
                following = (start, page + 1)  # still inside one second (or a vendor ignoring start_time)
        details = await self.alert_details([str(a["short_id"]) for a in new]) if new else []
        return AlertChunk(new, details, after), following

    async def alert_chunks(
        self, after: AlertPosition, *, page_size: int | None = None
    ) -> AsyncIterator[AlertChunk]:
        """New alerts after ``after``, chunk by chunk (one list page each), with their details.

        The next chunk (its list page and its details) is already being fetched while the caller
        publishes this one; at most one chunk is ahead, so memory stays bounded.
        """
        size = max(1, min(page_size or self.page_size, MAX_PAGE_SIZE))
        start = after.start_time
        first_page = 1 + len(after.short_ids) // size if after.published_time is not None else 1
        pending: asyncio.Task[tuple[AlertChunk, tuple[int | None, int] | None]] | None = (
            asyncio.ensure_future(self._chunk(after, start, first_page, size))
        )
        try:
            while pending is not None:
                chunk, following = await pending
                pending = None
                if following is not None:
                    pending = asyncio.ensure_future(
                        self._chunk(chunk.position, following[0], following[1], size)
                    )
                if chunk.summaries:
                    yield chunk
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def alerts_between(
        self, start_time: int, end_time: int | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[list[JSON]]:
        """Every alert published in ``[start_time, end_time]`` by page number (a bounded re-read;
        a page that shifts under us repeats an alert, which the caller dedupes by short id)."""
        size = max(1, min(page_size or self.page_size, MAX_PAGE_SIZE))
        page = 1
        while True:
            alerts, _, has_next = await self.list_alerts(
                page=page, page_size=size, start_time=start_time, end_time=end_time
            )
            if alerts:
                yield alerts
            if not has_next:
                return
            page += 1
