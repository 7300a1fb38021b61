"""The proxy's own HTTP/1.1 transport against raw sockets that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from soc_shared.http_transport import Http1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """A loopback TCP server; the handler gets each connection and its number (0, 1, ...)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> str:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            number = self.connections
            self.connections += 1
            try:
                await self.handler(reader, writer, number)
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


async def fetch(
    transport: Http1Transport, method: str, url: str, **kw: object
) -> tuple[int, bytes, httpx.Headers]:
    request = httpx.Request(method, url, extensions={"timeout": httpx.Timeout(2).as_dict()}, **kw)  # type: ignore[arg-type]
    response = await transport.handle_async_request(request)
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response.status_code, body, response.headers


@pytest.fixture
async def transport() -> AsyncIterator[Http1Transport]:
    transport = Http1Transport(max_connections=8, keepalive_expiry=4)
    yield transport
    await transport.aclose()


async def test_connections_are_kept_alive_and_reused(transport: Http1Transport) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while True:
            try:
                await server.read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(ok(b'{"n": %d}' % number))

    server = RawServer(handler)
    async with server as url:
        results = [await fetch(transport, "GET", f"{url}/tenant/") for _ in range(3)]
    assert [body for _, body, _ in results] == [b'{"n": 0}'] * 3
    assert server.connections == 1


async def test_a_reused_connection_closed_under_us_replays_an_idempotent_request_once(
    transport: Http1Transport,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.read_request(reader)
        writer.write(ok())
        await server.read_request(reader)  # the next request on this connection: hang up instead
        writer.transport.abort()

    server = RawServer(handler)
    async with server as url:
        assert (await fetch(transport, "GET", f"{url}/a/"))[0] == 200
        assert (await fetch(transport, "GET", f"{url}/b/"))[0] == 200  # replayed on a new connection
        assert server.connections == 2
        with pytest.raises(httpx.ReadError):
            await fetch(transport, "POST", f"{url}/c/", content=b"x")  # never replayed
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a/", b"/b/", b"/b/", b"/c/"]


async def test_chunked_interim_and_close_delimited_responses(transport: Http1Transport) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.read_request(reader)
        if number == 0:
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()

    server = RawServer(handler)
    async with server as url:
        status, body, headers = await fetch(transport, "GET", f"{url}/chunked/")
        assert (status, body, headers["transfer-encoding"]) == (200, b"hello world", "chunked")
        assert "link" not in headers  # the interim response's headers are not the final ones
        assert (await fetch(transport, "GET", f"{url}/close/"))[1] == b"until the end"


async def test_head_has_no_body_whatever_the_length_says(transport: Http1Transport) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")

    server = RawServer(handler)
    async with server as url:
        status, body, headers = await fetch(transport, "HEAD", f"{url}/file/")
    assert (status, body, headers["content-length"]) == (200, b"", "1000")


async def test_streamed_request_bodies_go_chunked(transport: Http1Transport) -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.read_request(reader)
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(ok())

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defgh"

    server = RawServer(handler)
    async with server as url:
        assert (await fetch(transport, "POST", f"{url}/upload/", content=body()))[0] == 200
    assert b"transfer-encoding: chunked" in server.requests[0].lower()
    assert received == [b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"]


async def test_timeouts_and_refusals_raise_httpx_errors(transport: Http1Transport) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await asyncio.sleep(5)

    async with RawServer(silent) as url:
        request = httpx.Request("GET", f"{url}/slow/", extensions={"timeout": httpx.Timeout(0.2).as_dict()})
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)
    with pytest.raises(httpx.ConnectError):
        await fetch(transport, "GET", url + "/gone/")
    assert transport.slots._value == 8  # every slot given back
