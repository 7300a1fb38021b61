"""Delivery of notices: every pending delivery is claimed with a lease (``FOR UPDATE SKIP LOCKED``,
so replicas share the work), sent on its channel, and its attempt recorded with the outcome.

- Retries back off exponentially (``retry_base_seconds`` doubling up to ``retry_max_seconds``; a
  429's Retry-After is honoured) up to ``max_attempts``; a permanent fault (a refused recipient, a
  4xx, a template error, an address the egress policy refuses) fails at once. A failed delivery stays
  listed with its attempts and can be sent again (nothing is lost).
- Each channel has a rate (deliveries per minute): beyond it, deliveries wait for the next minute.
- A channel failing ``park_after`` deliveries in a row is parked: its deliveries wait (pending)
  until an administrator resumes it; no other channel waits for it.
- Sends run concurrently, each bounded by ``send_timeout_seconds``: a slow endpoint holds its own
  delivery, never the others.
"""

from __future__ import annotations

import asyncio
import functools
import random
import smtplib
import socket
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from loguru import logger
from soc_shared.crypto import SealError
from soc_shared.egress import EgressDenied, EgressPolicy
from soc_shared.events import NotificationPosted, make_event
from soc_shared.http_transport import Http1Transport
from soc_shared.loop import BackgroundLoop
from soc_shared.vendor_http import parse_retry_after

from soc_tenant.notify import render
from soc_tenant.notify.options import NotifyOptions, notify_options
from soc_tenant.notify.tables import notify_attempt, notify_channel, notify_delivery

SENT, RETRY, FAILED = "sent", "retry", "failed"


@dataclass
class Outcome:
    status: str  # sent | retry | failed
    code: str | None = None
    detail: str | None = None
    retry_after: float | None = None


class SendFailure(Exception):
    def __init__(self, status: str, code: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.outcome = Outcome(status, code, detail[:500], retry_after)


def channel_aad(channel_id: uuid.UUID | str) -> str:
    return f"notify_channel:{channel_id}"


CLAIM_SQL = sa.text("""
WITH recent AS (
    SELECT channel_id, count(*) AS n FROM notify_attempt WHERE at > :now - interval '1 minute' GROUP BY channel_id
), candidates AS (
    SELECT d.id,
           row_number() OVER (PARTITION BY d.channel_id ORDER BY d.next_attempt_at, d.id) AS rn,
           c.rate_per_minute - coalesce(r.n, 0) AS room
    FROM notify_delivery d
    JOIN notify_channel c ON c.id = d.channel_id
    LEFT JOIN recent r ON r.channel_id = d.channel_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= :now
      AND (d.lease_until IS NULL OR d.lease_until < :now)
      AND c.enabled AND c.parked_at IS NULL
), claimed AS (
    UPDATE notify_delivery SET lease_until = :lease, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM notify_delivery
        WHERE id IN (SELECT id FROM candidates WHERE rn <= room)
        ORDER BY next_attempt_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, notice_id, channel_id, attempts, company_id
)
SELECT d.id, d.notice_id, d.channel_id, d.attempts, d.company_id,
       c.kind, c.config, c.secret_sealed, c.company_id AS channel_company_id,
       n.trigger, n.severity, n.title, n.summary, n.facts, n.due_at, n.created_at AS notice_created_at
FROM claimed d
JOIN notify_channel c ON c.id = d.channel_id
JOIN notify_notice n ON n.id = d.notice_id""")


@dataclass(frozen=True)
class ChannelRow:
    id: uuid.UUID
    kind: str
    config: dict[str, Any]
    secret_sealed: str | None
    company_id: uuid.UUID | None


class Deliverer:
    """The delivery worker of one replica."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.opts: NotifyOptions = notify_options(app)
        # Claims due deliveries every ``deliver_idle_seconds``, at once when woken or after a full
        # batch, backing off while the database is away.
        self.loop = BackgroundLoop(
            "tenant-notify-delivery", self._round, interval=self.opts.deliver_idle_seconds, immediate=True
        )
        self.slots = asyncio.Semaphore(self.opts.concurrency)
        self.in_flight: set[asyncio.Task[Any]] = set()
        self._results: list[tuple[Any, str, Outcome, int, datetime, datetime]] = []
        self._record_lock = asyncio.Lock()
        # smtplib blocks: its sessions run on threads of their own, as many as sends may be in flight.
        self.smtp_threads = ThreadPoolExecutor(self.opts.concurrency, thread_name_prefix="notify-smtp")
        egress = self.opts.egress or EgressPolicy.from_env()
        self.egress = egress
        self.http = httpx.AsyncClient(
            transport=getattr(app.state, "notify_transport", None) or Http1Transport(egress=egress),
            timeout=self.opts.send_timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "soc-portal-notifications"},
        )

    @property
    def db(self) -> Any:
        return self.app.state.db

    def now(self) -> datetime:
        return self.opts.clock()

    async def close(self) -> None:
        for task in list(self.in_flight):
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        await self.http.aclose()
        self.smtp_threads.shutdown(wait=False, cancel_futures=True)

    # --- the loop -----------------------------------------------------------------------------------
    def wake(self) -> None:
        """Something became due: claim now instead of at the next round."""
        self.loop.wake()

    async def _round(self) -> None:
        claimed = await self.claim()
        for row in claimed:
            await self.slots.acquire()
            task = asyncio.create_task(self._one(row))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        if len(claimed) >= self.opts.batch:
            self.loop.wake()  # a full batch: more may be due

    async def _one(self, row: Any) -> None:
        try:
            await self.deliver(row)
        except Exception as exc:  # noqa: BLE001 - recorded below; the lease lets another round retry
            logger.opt(exception=exc).warning("notification delivery {} crashed", row.id)
        finally:
            self.slots.release()

    async def run_once(self, limit: int | None = None) -> int:
        """Claim what is due now and deliver it all (tests and benches drive the worker with this)."""
        claimed = await self.claim(limit)
        await asyncio.gather(*(self.deliver(row) for row in claimed))
        return len(claimed)

    async def claim(self, limit: int | None = None) -> list[Any]:
        now = self.now()
        async with self.db.engine.begin() as conn:
            rows = await conn.execute(
                CLAIM_SQL,
                {
                    "now": now,
                    "lease": now + timedelta(seconds=self.opts.lease_seconds),
                    "limit": limit or self.opts.batch,
                },
            )
            return list(rows.all())

    # --- one delivery -------------------------------------------------------------------------------
    async def deliver(self, row: Any) -> Outcome:
        channel = ChannelRow(row.channel_id, row.kind, row.config, row.secret_sealed, row.channel_company_id)
        notice = render.Notice(
            id=row.notice_id,
            trigger=row.trigger,
            severity=row.severity,
            title=row.title,
            summary=row.summary,
            company=str(row.facts.get("company") or ""),
            at=row.due_at or row.notice_created_at,
            facts={k: v for k, v in row.facts.items() if k != "company"},
        )
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.send(channel, notice, row.id), self.opts.send_timeout_seconds)
            outcome = Outcome(SENT)
        except SendFailure as exc:
            outcome = exc.outcome
        except TimeoutError:
            outcome = Outcome(RETRY, "timeout", f"no answer within {self.opts.send_timeout_seconds:g} s")
        except Exception as exc:  # noqa: BLE001 - an unexpected fault is recorded, then retried
            outcome = Outcome(RETRY, "error", type(exc).__name__)
        await self.record(row, channel, outcome, int((time.perf_counter() - started) * 1000))
        return outcome

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        delay = min(self.opts.retry_max_seconds, self.opts.retry_base_seconds * 2 ** max(0, attempts - 1))
        delay *= random.uniform(0.8, 1.2)
        return max(delay, retry_after or 0.0)

    async def record(self, row: Any, channel: Any, outcome: Outcome, duration_ms: int) -> None:
        """Record the attempt and its outcome. Outcomes that finish while a write is under way are
        written together by the next one (one transaction for many deliveries); each caller returns
        once its own outcome is committed."""
        now = self.now()
        status = outcome.status
        if status == RETRY and row.attempts >= self.opts.max_attempts:
            status = FAILED
            outcome = Outcome(
                FAILED, outcome.code, f"gave up after {row.attempts} attempts: {outcome.detail}"
            )
        next_at = now
        if status == RETRY:
            next_at = now + timedelta(seconds=self.backoff(row.attempts, outcome.retry_after))
        self._results.append((row, status, outcome, duration_ms, now, next_at))
        async with self._record_lock:
            if not self._results:
                return  # written by the caller before us
            results, self._results = self._results, []
            await self._write(results)

    async def _write(self, results: list[tuple[Any, str, Outcome, int, datetime, datetime]]) -> None:
        deliveries = [
            {
                "b_id": row.id,
                "b_status": "pending" if status == RETRY else status,
                "b_next": next_at,
                "b_sent": now if status == SENT else None,
                "b_error": None if status == SENT else outcome.detail,
            }
            for row, status, outcome, _, now, next_at in results
        ]
        attempts = [
            {
                "company_id": row.company_id,
                "delivery_id": row.id,
                "channel_id": row.channel_id,
                "at": now,
                "outcome": status,
                "error_code": outcome.code,
                "detail": outcome.detail,
                "duration_ms": duration_ms,
            }
            for row, status, outcome, duration_ms, now, _ in results
        ]
        # Per channel, in order: a success resets the run of failures, a failure lengthens it.
        runs: dict[Any, tuple[bool, int, Outcome, datetime]] = {}
        for row, status, outcome, _, now, _ in results:
            reset, count, _, _ = runs.get(row.channel_id, (False, 0, outcome, now))
            runs[row.channel_id] = (
                (True, 0, outcome, now) if status == SENT else (reset, count + 1, outcome, now)
            )
        d, c = notify_delivery.c, notify_channel.c
        async with self.db.engine.begin() as conn:
            # A delivery deleted meanwhile (its channel was) has nothing left to record.
            alive = set(
                (
                    await conn.execute(
                        sa.select(d.id).where(d.id.in_([x["b_id"] for x in deliveries])).with_for_update()
                    )
                ).scalars()
            )
            deliveries = [x for x in deliveries if x["b_id"] in alive]
            attempts = [x for x in attempts if x["delivery_id"] in alive]
            if not deliveries:
                return
            await conn.execute(
                sa.update(notify_delivery)
                .where(d.id == sa.bindparam("b_id"))
                .values(
                    status=sa.bindparam("b_status"),
                    next_attempt_at=sa.bindparam("b_next"),
                    sent_at=sa.bindparam("b_sent"),
                    last_error=sa.bindparam("b_error"),
                    lease_until=None,
                ),
                deliveries,
            )
            await conn.execute(sa.insert(notify_attempt), attempts)
            for channel_id, (reset, count, outcome, now) in runs.items():
                if reset and count == 0:
                    await conn.execute(
                        sa.update(notify_channel)
                        .where(c.id == channel_id, c.consecutive_failures > 0)
                        .values(consecutive_failures=0)
                    )
                    continue
                failures = (
                    await conn.execute(
                        sa.update(notify_channel)
                        .where(c.id == channel_id)
                        .values(consecutive_failures=count if reset else c.consecutive_failures + count)
                        .returning(c.consecutive_failures)
                    )
                ).scalar_one_or_none()
                if failures is not None and failures >= self.opts.park_after:
                    reason = f"{failures} deliveries failed in a row; last: {outcome.code}: {outcome.detail}"
                    parked = await conn.execute(
                        sa.update(notify_channel)
                        .where(c.id == channel_id, c.parked_at.is_(None))
                        .values(parked_at=now, park_reason=reason[:500])
                    )
                    if parked.rowcount:
                        logger.warning(
                            "notification channel {} parked after {} failures", channel_id, failures
                        )

    # --- channels -------------------------------------------------------------------------------------
    def secret(self, channel: Any) -> str | None:
        if not channel.secret_sealed:
            return None
        try:
            return self.app.state.sealer.open(channel.secret_sealed, channel_aad(channel.id)).decode()
        except SealError:
            raise SendFailure(FAILED, "secret_unreadable", "the channel's secret cannot be opened") from None

    async def send(self, channel: Any, notice: render.Notice, delivery_id: int) -> None:
        try:
            if channel.kind == "email":
                message = render.email_message(notice, channel.config)
                await self.send_email(channel, message)
            elif channel.kind == "webhook":
                body = render.webhook_body(notice, delivery_id)
                stamp = int(self.now().timestamp())
                headers = {
                    "content-type": "application/json",
                    render.TIMESTAMP_HEADER: str(stamp),
                    render.DELIVERY_HEADER: str(delivery_id),
                    render.SIGNATURE_HEADER: render.sign(self.secret(channel) or "", stamp, body),
                }
                await self.post(channel.config["url"], body, headers)
            elif channel.kind in ("slack", "teams"):
                payload = (
                    render.slack_message(notice) if channel.kind == "slack" else render.teams_message(notice)
                )
                url = self.secret(channel) or ""
                await self.post(
                    url, render.json.dumps(payload).encode(), {"content-type": "application/json"}
                )
            elif channel.kind == "in_app":
                posted = NotificationPosted(
                    notice_id=notice.id,
                    company_id=None if channel.company_id is None else str(channel.company_id),
                    trigger=notice.trigger,
                    severity=notice.severity,
                    title=notice.title,
                    summary=notice.summary,
                    at=notice.at,
                )
                event = make_event(
                    "tenant.notification.posted", posted, source="/tenant/notify", subject=str(notice.id)
                )
                try:
                    await self.app.state.bus.publish([event])
                except Exception as exc:  # noqa: BLE001 - the broker may be away: retried
                    raise SendFailure(RETRY, "bus", type(exc).__name__) from None
            else:
                raise SendFailure(FAILED, "unknown_channel", f"unknown channel kind {channel.kind}")
        except render.TemplateError as exc:
            raise SendFailure(FAILED, "template_error", str(exc)) from None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = await self.http.post(url, content=body, headers=headers)
        except EgressDenied as exc:
            raise SendFailure(FAILED, "egress_denied", str(exc)) from None
        except httpx.TimeoutException:
            raise SendFailure(RETRY, "timeout", "the endpoint did not answer in time") from None
        except httpx.HTTPError as exc:
            raise SendFailure(RETRY, "unreachable", f"{type(exc).__name__}: {exc}"[:300]) from None
        if 200 <= response.status_code < 300:
            return
        snippet = response.text[:200]
        if response.status_code == 429 or response.status_code >= 500 or response.status_code == 408:
            raise SendFailure(
                RETRY,
                f"http_{response.status_code}",
                f"HTTP {response.status_code}: {snippet}",
                parse_retry_after(response.headers.get("retry-after")),
            )
        raise SendFailure(FAILED, f"http_{response.status_code}", f"HTTP {response.status_code}: {snippet}")

    async def send_email(self, channel: Any, message: EmailMessage) -> None:
        config = channel.config
        settings = self.app.state.settings
        if config.get("smtp_host"):
            host, port = config["smtp_host"], int(config.get("smtp_port") or 587)
            security = config.get("smtp_security") or "starttls"
            username, password = config.get("smtp_username"), self.secret(channel)
            try:
                # A customer's relay passes the egress policy like any outbound address.
                address = (await self.egress.admitted_addresses(host, port))[0]
            except EgressDenied as exc:
                raise SendFailure(FAILED, "egress_denied", str(exc)) from None
            except OSError as exc:
                raise SendFailure(RETRY, "unreachable", f"{host}: {exc}") from None
        else:  # the operator's relay
            if not settings.smtp_host:
                raise SendFailure(
                    FAILED, "no_smtp_relay", "no SMTP server configured for this channel or the service"
                )
            host, port, security = settings.smtp_host, settings.smtp_port, settings.smtp_security
            username = settings.smtp_username
            password = settings.smtp_password.get_secret_value() or None
            address = host
        timeout = self.opts.send_timeout_seconds
        await asyncio.get_running_loop().run_in_executor(
            self.smtp_threads, _smtp_send, address, host, port, security, username, password, message, timeout
        )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built once: loading the system trust store costs milliseconds of CPU per send otherwise."""
    return ssl.create_default_context()


class _SMTPTLS(smtplib.SMTP_SSL):
    """Implicit TLS to an already-checked address, verifying the certificate for the host name."""

    def __init__(self, server_name: str, **kw: Any) -> None:
        self._server_name = server_name
        super().__init__(**kw)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._server_name)


def _smtp_send(
    address: str,
    host: str,
    port: int,
    security: str,
    username: str | None,
    password: str | None,
    message: EmailMessage,
    timeout: float,
) -> None:
    try:
        if security == "tls":
            smtp: smtplib.SMTP = _SMTPTLS(host, context=_tls_context(), timeout=timeout)
            smtp.connect(address, port)
        else:
            smtp = smtplib.SMTP(timeout=timeout)
            smtp.connect(address, port)
            smtp._host = host  # type: ignore[attr-defined]  # STARTTLS verifies the name, not the address
        with smtp:
            smtp.ehlo()
            if security == "starttls":
                smtp.starttls(context=_tls_context())
                smtp.ehlo()
            if username and password:
                smtp.login(username, password)
            refused = smtp.send_message(message)
            if refused:
                raise SendFailure(FAILED, "recipients_refused", f"refused: {', '.join(sorted(refused))}")
    except SendFailure:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendFailure(
            FAILED, "recipients_refused", f"refused: {', '.join(sorted(exc.recipients))}"
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise SendFailure(FAILED, "smtp_auth", f"authentication refused ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        status = RETRY if 400 <= exc.smtp_code < 500 else FAILED
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        raise SendFailure(status, f"smtp_{exc.smtp_code}", f"{exc.smtp_code} {text}"[:300]) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailure(RETRY, "unreachable", f"{host}:{port}: {type(exc).__name__}: {exc}"[:300]) from None
