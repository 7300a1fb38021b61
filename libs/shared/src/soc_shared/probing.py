"""Test-connection, written once for every ingestor: build the vendor client for credentials being
tested, run probes in order — each proving one thing the sync needs — and answer the first
failure with its category (unreachable, tls, timeout, bad_credentials, permission, not_found,
invalid_request, rate_limited, server_error, bad_response), the check that failed and those that
passed; all passed, the answer says what was found."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from soc_shared.sync import ConnectionTestRequest, ConnectionTestResult
from soc_shared.vendor_http import RetryPolicy, VendorError

CONNECTION_TEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0, pool=5.0)
CONNECTION_TEST_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_retry_after=5)
# One probe: its name and a coroutine on the client answering what it found (or None).
Probe = tuple[str, Callable[[Any], Awaitable[dict[str, Any] | None]]]
ClientMaker = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]


def connection_test_target(request: ConnectionTestRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (integration, credentials) a client factory takes, for credentials being tested."""
    integration = {
        "id": "connection-test",
        "base_url": request.base_url,
        "verify_tls": request.verify_tls,
        "settings": request.settings,
        "credential_kind": request.credential_kind,
    }
    credentials = {
        "credential_kind": request.credential_kind,
        "secrets": request.credentials,
        "ca_pem": request.ca_pem,
    }
    return integration, credentials


async def probe_connection(
    request: ConnectionTestRequest,
    make_client: ClientMaker,
    probes: Sequence[Probe],
    *,
    success: Callable[[Any, dict[str, Any]], str],
    options: dict[str, Any] | None = None,
    detail_keys: Sequence[str] = ("reason",),
    failure_message: Callable[[Any, str, VendorError], str] | None = None,
) -> ConnectionTestResult:
    """``make_client(integration, credentials, options)`` builds the client (a bad configuration
    answers ``invalid_request`` or its vendor category); ``options`` adds to the test's retry and
    timeout. ``success(client, found)`` words the answer (and may add to ``found``, the details);
    ``detail_keys`` are copied from a failure's details; ``failure_message`` may reword it."""
    integration, credentials = connection_test_target(request)
    client_options: dict[str, Any] = {"retry": CONNECTION_TEST_RETRY, "timeout": CONNECTION_TEST_TIMEOUT}
    client_options.update(options or {})
    try:
        client = make_client(integration, credentials, client_options)
    except VendorError as exc:  # incomplete credentials, a custom CA that is not a PEM bundle
        return ConnectionTestResult(ok=False, category=exc.category.value, message=exc.message)
    except ValueError as exc:  # settings the ingestor does not accept
        return ConnectionTestResult(ok=False, category="invalid_request", message=str(exc))
    passed: list[str] = []
    found: dict[str, Any] = {}
    check = probes[0][0] if probes else ""
    try:
        for check, probe in probes:
            found.update(await probe(client) or {})
            passed.append(check)
    except VendorError as exc:
        details: dict[str, Any] = {
            "status": exc.status,
            "vendor_code": exc.vendor_code,
            "failed_check": check,
            "passed_checks": passed,
        }
        details.update({key: exc.details[key] for key in detail_keys if key in exc.details})
        message = failure_message(client, check, exc) if failure_message else exc.message
        return ConnectionTestResult(ok=False, category=exc.category.value, message=message, details=details)
    finally:
        await client.aclose()
    found["passed_checks"] = passed
    return ConnectionTestResult(ok=True, message=success(client, found), details=found)
