"""Bodies stream through the gateway: a 50 MB download is never held whole in memory."""

from __future__ import annotations

import time
import tracemalloc

from soc_shared.testing import TokenFactory

MB = 1024 * 1024


def test_a_50_mb_response_streams_without_being_buffered(
    gateway, tenant_upstream, tokens: TokenFactory
) -> None:
    received = 0
    first_chunk_at = None
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with (
            gateway.client() as client,
            client.stream("GET", "/tenant/big/?mb=50", headers=tokens.headers()) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-length"] == str(50 * MB)
            for chunk in response.iter_raw():
                if first_chunk_at is None:
                    first_chunk_at = time.monotonic()
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 50 * MB
    # Upstream, gateway and client all live in this process: together they hold socket and event-loop
    # buffers (about 9 MB here, the same for 10 MB or 100 MB bodies), never the 50 MB.
    assert peak - baseline < 20 * MB, f"peak grew by {(peak - baseline) / MB:.1f} MB"
    finished_at = tenant_upstream.state["big_finished_at"]
    assert first_chunk_at is not None and finished_at is not None
    assert first_chunk_at < finished_at  # the client had bytes long before the upstream was done


def test_a_large_upload_streams_to_the_upstream(gateway, tokens: TokenFactory) -> None:
    def body():
        for _ in range(64):
            yield b"u" * 65536  # 4 MiB, chunked

    with gateway.client() as client:
        response = client.post("/integration/", content=body(), headers=tokens.headers())
    assert response.status_code == 200
    assert response.json()["body_length"] == 4 * MB
    assert response.json()["headers"]["transfer-encoding"] == "chunked"
