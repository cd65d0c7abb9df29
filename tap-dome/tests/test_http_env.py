"""The HTTP environment a user's machine may have: a proxy, and a ~/.netrc.

The fetcher reads the proxy settings once per session instead of on every request, and
never reads ~/.netrc (requests would let an entry for the API's host replace the bearer
key with basic auth). Both run the real tap CLI against the simulator on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dome_simulator import Dataset
from tap_harness import API_KEY, TAP, parse_output, tap_config, truth_ids, write_args


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy for plain HTTP: GET with an absolute URL, passed on as it came."""

    seen: list[tuple[str, str]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        upstream = requests.get(self.path, headers=dict(self.headers), timeout=30)
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Proxy", (_Proxy,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _run(tmp_path: Path, config: dict[str, Any], **env: str) -> tuple[int, set[str], str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TAP_DOME_") and k.lower() not in ("http_proxy", "no_proxy")
    }
    done = subprocess.run(
        [*TAP, *write_args(tmp_path, config, None, ("orders",))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **env},
        check=False,
    )
    records, _, _ = parse_output(done.stdout)
    return done.returncode, {r["order_id"] for r in records}, done.stderr


def test_requests_go_through_the_proxy_in_the_environment(
    simulator_factory: Any, tmp_path: Path, proxy: tuple[str, list[tuple[str, str]]]
) -> None:
    sim = simulator_factory(Dataset.demo())
    url, seen = proxy
    code, ids, stderr = _run(tmp_path, tap_config(sim), HTTP_PROXY=url)
    assert code == 0, stderr[-2000:]
    assert ids == truth_ids(sim)
    orders = [path for path, _ in seen if "/polymarket/orders" in path]
    assert orders, "no request went through the proxy"
    assert all(auth == f"Bearer {API_KEY}" for _, auth in seen)


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_key(
    simulator_factory: Any, tmp_path: Path
) -> None:
    sim = simulator_factory(Dataset.demo())
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-key\n")
    netrc.chmod(0o600)
    code, ids, stderr = _run(tmp_path, tap_config(sim), HOME=str(home))
    assert code == 0, stderr[-2000:]
    assert ids == truth_ids(sim)
