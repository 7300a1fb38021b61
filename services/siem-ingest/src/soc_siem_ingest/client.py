"""IBM QRadar REST API client (on the shared vendor HTTP base)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from soc_shared.vendor_http import VendorError, VendorErrorCategory, VendorHttp

_CONTENT_RANGE = re.compile(r"items\s+(\d+)-(-?\d+)/(\d+|\*)")


def qradar_error(response: httpx.Response) -> VendorError | None:
    """QRadar's JSON error body → a categorised error (None: let the default mapping decide)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or "http_response" not in body and "code" not in body:
        return None
    status = response.status_code
    message = str(body.get("message") or body.get("description") or "QRadar error")[:300]
    code = str(body.get("code")) if body.get("code") is not None else None
    if status == 401:
        category = VendorErrorCategory.BAD_CREDENTIALS
    elif status == 403:
        category = VendorErrorCategory.PERMISSION
    elif status == 404:
        category = VendorErrorCategory.NOT_FOUND
    elif status in (400, 406, 409, 422):
        category = VendorErrorCategory.INVALID_REQUEST
    elif status == 429:
        category = VendorErrorCategory.RATE_LIMITED
    elif status >= 500:
        category = VendorErrorCategory.SERVER_ERROR
    else:
        return None
    return VendorError(category, f"QRadar: {message}", status=status, vendor_code=code,
                       retryable=status == 429 or status >= 500)


class QRadarClient:
    """Both authentications of the original: an authorised-service token (``SEC``) or basic."""

    def __init__(self, base_url: str, *, integration_id: str, token: str | None = None,
                 username: str | None = None, password: str | None = None, api_version: str = "16.0",
                 verify_tls: bool = True, ca_pem: str | None = None, page_size: int = 1000,
                 transport: httpx.AsyncBaseTransport | None = None, **http_options: Any) -> None:
        headers = {"Version": api_version, "Accept": "application/json"}
        auth = None
        if token:
            headers["SEC"] = token
        elif username is not None and password is not None:
            auth = httpx.BasicAuth(username, password)
        else:
            raise ValueError("QRadar needs an authorised-service token or a username and password")
        root = base_url.rstrip("/")
        if not root.endswith("/api"):
            root += "/api"
        self.page_size = page_size
        self.http = VendorHttp(root + "/", vendor="qradar", integration_id=integration_id, headers=headers,
                               auth=auth, verify_tls=verify_tls, ca_pem=ca_pem, transport=transport,
                               error_mapper=qradar_error, **http_options)

    async def aclose(self) -> None:
        await self.http.close()

    async def about(self) -> dict[str, Any]:
        return await self.http.get_json("system/about")

    async def pages(self, path: str, *, params: dict[str, Any] | None = None,
                    page_size: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield a collection page by page with ``Range: items=a-b``, reading ``Content-Range``."""
        size = page_size or self.page_size
        start = 0
        while True:
            response, body = await self.http.request_with_json(
                "GET", path, params=params, headers={"Range": f"items={start}-{start + size - 1}"}
            )
            if not isinstance(body, list):
                raise VendorError(VendorErrorCategory.BAD_RESPONSE, f"QRadar {path}: expected a list")
            if body:
                yield body
            total = None
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            if match and match.group(3) != "*":
                total = int(match.group(3))
            start += len(body)
            if not body or len(body) < size or (total is not None and start >= total):
                return
