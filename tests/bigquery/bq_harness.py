"""Offline BigQuery + GCS for tests: emulators, a token endpoint and throwaway credentials.

Everything here runs on 127.0.0.1 only and needs nothing but PyPI:

- ``bqemulator`` (DuckDB-backed BigQuery REST API) and ``gcp-storage-emulator`` are installed
  into their own virtualenv under ``.cache/bq-harness/`` from the pinned
  ``requirements-emulators.txt`` beside this file, once, and reused (a stamp of the
  requirements file decides when to reinstall);
- the BigQuery emulator reads ``gs://`` URIs from the GCS emulator's data directory on disk;
- a tiny OAuth token endpoint answers every token request, and a service-account JSON with a
  freshly generated RSA key points at it, so the real Google client libraries (target, dbt)
  authenticate exactly as in production without reaching Google.

Used by ``tests/bigquery/conftest.py``; also runnable by hand::

    .venv/bin/python tests/bigquery/bq_harness.py up     # prints the env to export; Ctrl-C ends

Only the standard library is imported here, so the root virtualenv needs nothing extra.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("BQ_HARNESS_CACHE", REPO / ".cache" / "bq-harness"))
EMULATOR_REQUIREMENTS = HERE / "requirements-emulators.txt"
LAUNCHER = HERE / "emulator_launcher.py"  # exits with this process; patches two emulator gaps
PYTHON = os.environ.get("BQ_HARNESS_PYTHON", "python3.11")
DUCKDB_VERSION = "v1.5.5"  # must match the duckdb pin in requirements-emulators.txt

PROJECT = "dome-test"
LOCATION = "US"


def log(msg: str) -> None:
    print(f"[bq-harness] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- installs


def _uv() -> list[str] | None:
    for cand in (REPO / ".venv" / "bin" / "uv", shutil.which("uv")):
        if cand and Path(cand).exists():
            return [str(cand)]
    return None


def _ready(venv: Path, want: str) -> bool:
    stamp = venv / ".harness-stamp"
    return stamp.exists() and stamp.read_text() == want and (venv / "bin" / "python").exists()


def ensure_venv(name: str, requirements: Path) -> Path:
    """A virtualenv under CACHE/<name> with `requirements` installed; reused while unchanged."""
    venv = CACHE / name
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if _ready(venv, want):
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing it right now
        if _ready(venv, want):
            return venv
        t0 = time.monotonic()
        log(f"installing {requirements.name} into {venv} (once; reused afterwards)")
        if venv.exists():
            shutil.rmtree(venv)
        uv = _uv()
        python = str(venv / "bin" / "python")
        if uv:
            subprocess.run([*uv, "venv", "-q", "--python", PYTHON, str(venv)], check=True)
            install = [*uv, "pip", "install", "-q", "--python", python]
        else:
            subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
            install = [python, "-m", "pip", "install", "-q"]
        subprocess.run([*install, "-r", str(requirements)], check=True)
        (venv / ".harness-stamp").write_text(want)
        log(f"installed {name} in {time.monotonic() - t0:.1f}s")
    return venv


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


METADATA_EMAIL = f"workload@{PROJECT}.iam.gserviceaccount.com"
_TOKEN = {"access_token": "offline-test-token", "expires_in": 3600, "token_type": "Bearer"}


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    """Answers any POST (google-auth's JWT-bearer token exchange) with a bearer token, and GETs
    as the GCE/GKE metadata server does: what google-auth's application default credentials
    read on a VM or under GKE workload identity (its `compute_engine` credentials)."""

    calls = 0
    metadata_tokens = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).calls += 1
        self._send(json.dumps(_TOKEN), "application/json")

    def do_GET(self) -> None:
        path = urllib.parse.urlparse(self.path).path.rstrip("/")
        account = "/computeMetadata/v1/instance/service-accounts/default"
        # A real metadata server answers for the account by its email too, and google-auth
        # asks so once it knows the email: a second refresh of the same credentials (two
        # threads that found no token at once, say) reads the account by email.
        by_email = f"/computeMetadata/v1/instance/service-accounts/{METADATA_EMAIL}"
        if path.startswith(by_email):
            path = account + path[len(by_email) :]
        if self.headers.get("Metadata-Flavor") != "Google":
            self._send("Missing Metadata-Flavor header", "text/plain", status=403)
        elif path == "":
            self._send("ok", "text/plain")  # google-auth's ping
        elif path == f"{account}/token":
            type(self).metadata_tokens += 1
            self._send(json.dumps(_TOKEN), "application/json")
        elif path == account:
            info = {"email": METADATA_EMAIL, "aliases": ["default"], "scopes": []}
            self._send(json.dumps(info), "application/json")
        elif path == f"{account}/email":
            self._send(METADATA_EMAIL, "text/plain")
        elif path == "/computeMetadata/v1/project/project-id":
            self._send(PROJECT, "text/plain")
        elif path == "/computeMetadata/v1/universe/universe-domain":
            self._send("googleapis.com", "text/plain")
        else:
            self._send("not found", "text/plain", status=404)

    def _send(self, text: str, content_type: str, status: int = 200) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def write_service_account(path: Path, token_uri: str, python: Path) -> Path:
    """A throwaway service-account JSON with a fresh RSA key (made with `cryptography`)."""
    code = r"""
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()
print(json.dumps({"pem": pem}))
"""
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    pem = json.loads(out.stdout)["pem"]
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": hashlib.sha1(pem.encode()).hexdigest(),
        "private_key": pem,
        "client_email": f"offline-tests@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "auth_uri": token_uri,
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": token_uri,
        "client_x509_cert_url": token_uri,
        "universe_domain": "googleapis.com",
    }
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """Running emulators, token endpoint and credentials; `env` points clients at them."""

    root: Path
    bq_port: int
    gcs_port: int
    token_port: int
    credentials: Path
    gcs_data: Path
    project: str = PROJECT
    location: str = LOCATION
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _token_server: http.server.ThreadingHTTPServer | None = None

    @property
    def bq_url(self) -> str:
        return f"http://127.0.0.1:{self.bq_port}"

    @property
    def gcs_url(self) -> str:
        return f"http://127.0.0.1:{self.gcs_port}"

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.token_port}/token"

    def env(self) -> dict[str, str]:
        """Environment for every process that talks to BigQuery/GCS (target, dbt, scripts)."""
        return {
            "BIGQUERY_EMULATOR_HOST": self.bq_url,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.credentials),
            "GOOGLE_CLOUD_PROJECT": self.project,
            # Never look for a metadata server (GCE) outside the machine.
            "NO_GCE_CHECK": "True",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
        }

    def workload_identity_env(self) -> dict[str, str]:
        """`env()` with no key file anywhere: clients find credentials on the metadata server.

        That is how application default credentials work on a VM and under GKE workload
        identity (google-auth's compute_engine credentials; the server here is the token
        endpoint, which also answers as a metadata server on 127.0.0.1).
        """
        host = f"127.0.0.1:{self.token_port}"
        return {
            **self.env(),
            "GOOGLE_APPLICATION_CREDENTIALS": "",
            "NO_GCE_CHECK": "false",
            "GCE_METADATA_HOST": host,
            "GCE_METADATA_IP": host,
            "CLOUDSDK_CONFIG": str(self.root / "no-gcloud"),  # no gcloud ADC file either
        }

    @staticmethod
    def metadata_tokens() -> int:
        """Tokens handed out by the metadata server so far (by every process)."""
        return _TokenHandler.metadata_tokens

    # ---- GCS (JSON API, anonymous: the emulator does not check auth)

    def gcs_request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.gcs_url}/storage/v1{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def create_bucket(self, name: str, location: str | None = None) -> None:
        loc = location or self.location
        self.gcs_request("POST", f"/b?project={self.project}", {"name": name, "location": loc})
        # The emulator ignores the location on insert (always "US"); PATCH sets it.
        self.gcs_request("PATCH", f"/b/{name}", {"location": loc})

    def delete_bucket(self, name: str) -> None:
        for obj in self.list_objects(name):
            quoted = urllib.parse.quote(obj, safe="")
            self.gcs_request("DELETE", f"/b/{name}/o/{quoted}")
        self.gcs_request("DELETE", f"/b/{name}")

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        q = f"?prefix={urllib.parse.quote(prefix)}" if prefix else ""
        out = self.gcs_request("GET", f"/b/{bucket}/o{q}") or {}
        return [item["name"] for item in out.get("items", [])]

    # ---- BigQuery (REST)

    def bq_request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.bq_url}/bigquery/v2/projects/{self.project}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:2000]!r}") from exc
        return json.loads(raw) if raw else None

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run a standard-SQL query; rows as dicts with values converted by column type."""
        res = self.bq_request(
            "POST",
            "/queries",
            {"query": sql, "useLegacySql": False, "timeoutMs": 120000},
        )
        job_ref = res.get("jobReference", {})
        rows = list(res.get("rows", []))
        schema = res.get("schema")
        token = res.get("pageToken")
        while not res.get("jobComplete", True) or token:
            q = f"?pageToken={urllib.parse.quote(token)}" if token else ""
            res = self.bq_request("GET", f"/queries/{job_ref['jobId']}{q}")
            schema = res.get("schema") or schema
            rows.extend(res.get("rows", []))
            token = res.get("pageToken")
            if not res.get("jobComplete", True):
                time.sleep(0.2)
        fields = (schema or {}).get("fields", [])
        return [
            {f["name"]: _convert(f, cell.get("v")) for f, cell in zip(fields, r["f"], strict=True)}
            for r in rows
        ]

    def table(self, dataset: str, table: str) -> dict[str, Any]:
        return dict(self.bq_request("GET", f"/datasets/{dataset}/tables/{table}"))

    def table_columns(self, dataset: str, table: str) -> dict[str, str]:
        meta = self.table(dataset, table)
        return {f["name"]: f["type"].upper() for f in meta["schema"]["fields"]}

    def table_exists(self, dataset: str, table: str) -> bool:
        try:
            self.bq_request("GET", f"/datasets/{dataset}/tables/{table}")
        except RuntimeError as exc:
            if " 404 " in str(exc):
                return False
            raise
        return True

    def drop_dataset(self, dataset: str) -> None:
        with contextlib.suppress(RuntimeError):
            self.bq_request("DELETE", f"/datasets/{dataset}?deleteContents=true")

    # ---- lifecycle

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()
        if self._token_server is not None:
            self._token_server.shutdown()
            self._token_server.server_close()
            self._token_server = None


def _convert(fld: dict[str, Any], value: Any) -> Any:
    if value is None:
        return None
    typ = fld.get("type", "STRING").upper()
    if fld.get("mode") == "REPEATED":
        return [_convert({**fld, "mode": "NULLABLE"}, v.get("v")) for v in value]
    if typ in ("INTEGER", "INT64"):
        return int(value)
    if typ in ("FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
        return float(value)
    if typ in ("BOOLEAN", "BOOL"):
        return value in (True, "true", "True")
    if typ == "TIMESTAMP":  # seconds since the epoch (bqemulator answers in microseconds)
        seconds = float(value)
        return seconds / 1e6 if abs(seconds) > 1e11 else seconds
    return value


def start_stack(run_dir: Path) -> Stack:
    """Install (once) and start bqemulator, gcp-storage-emulator and the token endpoint."""
    emu = ensure_venv("emulators", EMULATOR_REQUIREMENTS)
    py = emu / "bin" / "python"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    home = run_dir / "home"
    ext_dir = home / ".duckdb" / "extensions" / DUCKDB_VERSION / "linux_amd64"
    ext_dir.mkdir(parents=True)
    site = next((emu / "lib").glob("python3*/site-packages"))
    spatial = site / "duckdb_extension_spatial" / "extensions" / DUCKDB_VERSION
    shutil.copy(spatial / "spatial.duckdb_extension", ext_dir / "spatial.duckdb_extension")
    tmp = run_dir / "tmp"
    tmp.mkdir()
    gcs_base = run_dir / "gcs"
    gcs_data = gcs_base / "data"
    gcs_data.mkdir(parents=True)

    # Token endpoint (in this process).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=server.serve_forever, name="token-endpoint", daemon=True).start()
    token_port = int(server.server_address[1])

    stack = Stack(
        root=run_dir,
        bq_port=free_port(),
        gcs_port=free_port(),
        token_port=token_port,
        credentials=run_dir / "service-account.json",
        gcs_data=gcs_data,
        _token_server=server,
    )
    write_service_account(stack.credentials, stack.token_uri, py)
    base_env = {
        "PATH": f"{emu / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
    }
    try:
        gcs_log = open(run_dir / "gcs.log", "wb")  # noqa: SIM115
        stack.procs.append(
            subprocess.Popen(
                [
                    str(py),
                    str(LAUNCHER),
                    str(os.getpid()),
                    "gcs",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(stack.gcs_port),
                    "-q",
                ],
                env={**base_env, "STORAGE_BASE": str(gcs_base), "STORAGE_DIR": "data"},
                cwd=run_dir,
                stdout=gcs_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        bq_log = open(run_dir / "bqemulator.log", "wb")  # noqa: SIM115
        stack.procs.append(
            subprocess.Popen(
                [
                    str(py),
                    str(LAUNCHER),
                    str(os.getpid()),
                    "bqemulator",
                    "start",
                    "--rest-host",
                    "127.0.0.1",
                    "--rest-port",
                    str(stack.bq_port),
                    "--grpc-host",
                    "127.0.0.1",
                    "--grpc-port",
                    str(free_port()),
                    "--project",
                    PROJECT,
                    "--log-level",
                    "warning",
                    "--ephemeral",
                ],
                env={
                    **base_env,
                    "BQEMU_GCS_LOCAL_ROOT": str(gcs_data),
                    # Offline: never try to download DuckDB extensions (avro).
                    "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                    "BQEMU_UPLOAD_STAGING_DIR": str(tmp / "bqemu_uploads"),
                },
                cwd=run_dir,
                stdout=bq_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_http(f"{stack.gcs_url}/storage/v1/b?project={PROJECT}", 60, stack.procs[0])
        wait_http(f"{stack.bq_url}/healthz", 60, stack.procs[1])
    except BaseException:
        stack.stop()
        for name in ("gcs.log", "bqemulator.log"):
            p = run_dir / name
            if p.exists():
                log(f"{name}:\n{p.read_text(errors='replace')[-4000:]}")
        raise
    return stack


@contextlib.contextmanager
def running_stack(run_dir: Path) -> Iterator[Stack]:
    stack = start_stack(run_dir)
    try:
        yield stack
    finally:
        stack.stop()


def main(argv: list[str]) -> int:
    if argv[:1] != ["up"]:
        print(__doc__)
        return 2

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    with running_stack(CACHE / "manual-run") as stack:
        for k, v in stack.env().items():
            print(f"export {k}={v}")
        print(
            f"# credentials: {stack.credentials}; GCS data: {stack.gcs_data}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in stack.procs):
                time.sleep(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
