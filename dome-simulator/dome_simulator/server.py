"""The HTTP server around :class:`SimulatorCore`: ``DomeSimulator``.

``ThreadingHTTPServer`` gives one daemon thread per connection, so latency and
``timeout`` stalls never block other clients: each handler sleeps in its own thread,
holding no lock (the store's lock is held only while slicing a page, microseconds), so
hundreds of requests can be in flight at once. Responses are HTTP/1.1 keep-alive,
written in a single ``sendall`` (head and body together, Nagle off) with an exact
Content-Length. Nothing is logged: requests carry the API key.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .app import SimulatorCore
from .dataset import Dataset
from .responses import Response

__all__ = ["DomeSimulator"]

_MAX_BODY = 1 << 20  # control-plane bodies are tiny; refuse anything absurd


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The listen backlog. The default (5) drops SYNs when a client opens many connections
    # at once (a tap with ~100 requests in flight, a benchmark with several taps).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], core: SimulatorCore) -> None:
        self.core = core
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DomeSimulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._write(Response(400, b'{"error":"Bad Request","message":"bad Content-Length"}'))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        response, counted = self.server.core.dispatch(
            self.command, path, query, self.headers.get("Authorization"), body
        )
        try:
            if response.delay > 0 and self.server.stopping.wait(response.delay):
                self.close_connection = True
                return
            if response.drop:
                self.close_connection = True
                return
            self._write(response)
        finally:
            if counted:
                self.server.core.done()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _write(self, response: Response) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + response.body)
        except OSError:  # the client gave up (e.g. its timeout fired first)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging (and never risk printing a key)."""


class DomeSimulator(SimulatorCore):
    """A Dome API simulator on 127.0.0.1; see the package docstring for the semantics.

    >>> with DomeSimulator(seed=7, dataset=Dataset.demo(7)) as sim:  # doctest: +SKIP
    ...     requests.get(sim.base_url + "/polymarket/orders", params={"user": sim.wallets[0]},
    ...                  headers={"Authorization": f"Bearer {sim.api_key}"})
    """

    def __init__(
        self,
        seed: int = 7,
        api_key: str = "sim-key",
        dataset: Dataset | None = None,
        rate_limit: tuple[int, int] | str | None = None,
        latency: tuple[float, float] = (0.0, 0.0),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        retry_after: int | str | None = "auto",
        data_lag: float = 0.0,
        frozen_now: float | None = None,
    ) -> None:
        super().__init__(
            seed,
            api_key,
            dataset,
            rate_limit,
            latency,
            retry_after=retry_after,
            data_lag=data_lag,
            frozen_now=frozen_now,
        )
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind and serve in a background thread; returns ``base_url``. Idempotent."""
        if self._server is None:
            server = _Server((self.host, self.port), self)
            self.port = int(server.server_address[1])
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"dome-simulator:{self.port}",
                daemon=True,
            )
            self._server, self._thread = server, thread
            thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving, wake stalled handlers and close open connections. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the tap's ``api_url``."""
        if self._server is None and self.port == 0:
            raise RuntimeError("the simulator is not started: call start() first")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def control_url(self) -> str:
        """``http://127.0.0.1:<port>/_sim``: the HTTP control plane."""
        return self.base_url[: -len("/v1")] + "/_sim"

    def __enter__(self) -> DomeSimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
