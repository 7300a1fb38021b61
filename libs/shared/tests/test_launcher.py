"""The process launcher the e2e, contract and browser suites, the benches and the chaos run share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from soc_shared.testing import Launcher, broker_pid, cpu_seconds, healthy, listen_port


def test_starts_waits_for_health_and_stops(tmp_path: Path) -> None:
    launcher = Launcher(env=dict(os.environ), logs=tmp_path / "logs", cwd=tmp_path)
    port = listen_port()
    assert 20000 <= port < 30000
    url = f"http://127.0.0.1:{port}/"
    proc = launcher.start("web", ["-m", "http.server", str(port), "--bind", "127.0.0.1"], url, timeout=30)
    try:
        assert healthy(url)
        assert launcher.procs == {"web": proc}
        assert cpu_seconds(proc.pid) >= 0.0
    finally:
        launcher.stop_all()
    assert proc.poll() is not None
    assert not healthy(url)
    assert launcher.procs == {}
    assert (tmp_path / "logs" / "web.log").exists()


def test_a_process_that_exits_fails_with_its_log(tmp_path: Path) -> None:
    launcher = Launcher(env=dict(os.environ), logs=tmp_path, cwd=tmp_path)
    with pytest.raises(RuntimeError, match="exited with 3: .*bad configuration"):
        launcher.start(
            "broken",
            ["-c", "import sys; print('bad configuration', flush=True); sys.exit(3)"],
            f"http://127.0.0.1:{listen_port()}/healthz",
            timeout=30,
        )


def test_cpu_of_this_process_and_the_broker() -> None:
    sum(i * i for i in range(200_000))
    assert cpu_seconds(os.getpid()) > 0.0
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such process
    pid = broker_pid()
    if pid is None:
        pytest.skip("RabbitMQ does not run on this machine")
    assert cpu_seconds(pid) > 0.0
