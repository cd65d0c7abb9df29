"""Staged files: rows written locally, then compressed and uploaded to GCS by worker threads.

Two sources of files:

- record mode: the target appends each RECORD's row (bytes) to a local JSONL file per stream;
  a full file (``batch_size`` rows) or a checkpoint seals it, and a worker gzips and uploads it;
- BATCH messages: the tap wrote the file; a worker reads it, adds the two metadata fields to
  every line in one ``bytes.replace`` over the whole file, compresses and uploads it.

Compression is ISA-L's gzip (the `isal` package: ~4x less CPU than zlib at level 1, and smaller
files); it and the uploads release the GIL, so this work runs beside the main thread's reading.
Object names are unique per run (``PREFIX/DATASET/TABLE/RUN/NNNNNN.jsonl.gz``), so retrying an
upload is idempotent, and nothing in the bucket is ever overwritten.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import unquote, urlparse

from google.api_core.retry import Retry
from isal import isal_zlib

from target_bigquery_dome import testpause
from target_bigquery_dome.settings import setting_ref

_CHUNK = 1 << 20
_UPLOADS = itertools.count(1)
_LOG = logging.getLogger("target-bigquery")
_UPLOAD_RETRY = Retry(initial=1.0, maximum=30.0, multiplier=2.0, timeout=300.0)
EXTRACTED_KEY = b',"_sdc_extracted_at":'


def utc_now() -> str:
    """Now, as the text of a BigQuery TIMESTAMP in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def batched_suffix(batched_at: str) -> bytes:
    """What ends every row of a file: its _sdc_batched_at, the closing brace, the newline."""
    return b',"_sdc_batched_at":"' + batched_at.encode() + b'"}\n'


@dataclass(frozen=True)
class Staged:
    """One file in GCS, waiting for its load job."""

    uri: str
    rows: int
    source: str | None = None  # the tap's batch file, removed once the rows are loaded


class StreamFile:
    """The open local file of one stream in record mode."""

    def __init__(self, path: str, batched_at: str) -> None:
        self.path = path
        self.batched_at = batched_at
        self.suffix = batched_suffix(batched_at)
        self.rows = 0
        self.handle: IO[bytes] = open(path, "wb", buffering=_CHUNK)  # noqa: SIM115

    def close(self) -> None:
        self.handle.close()


class Uploader:
    """Compresses and uploads files to gs://bucket/...; runs in worker threads."""

    def __init__(self, bucket: Any, compression: str, workdir: str) -> None:
        self.bucket = bucket  # google.cloud.storage.Bucket
        self.gzip = compression == "gzip"
        self.workdir = workdir  # local folder for the files being compressed

    @property
    def extension(self) -> str:
        return ".jsonl.gz" if self.gzip else ".jsonl"

    def local_file(self, path: str, rows: int, name: str) -> Staged:
        """Upload a sealed record-mode file; the local copies are removed afterwards."""
        upload = path
        try:
            if self.gzip:
                upload = path + ".gz"
                _gzip_file(path, upload)
            self._upload(upload, name)
        finally:
            for leftover in {path, upload}:
                if os.path.exists(leftover):
                    os.unlink(leftover)
        return Staged(f"gs://{self.bucket.name}/{name}", rows)

    def batch_file(self, uri: str, compression: str | None, batched_at: str, name: str) -> Staged:
        """Stage one file of a BATCH message, with _sdc_extracted_at/_sdc_batched_at added.

        Streamed in 1 MiB chunks (memory stays flat whatever the tap's batch_size). A JSON line
        ends with "}\n" and nowhere else holds those two bytes (a newline inside a string is
        written as \\n), so one bytes.replace per chunk adds the fields to every row. The batch
        was complete when its BATCH message arrived: that time is both metadata values.
        """
        path = local_path(uri)
        at = b'"' + batched_at.encode() + b'"'
        ending = EXTRACTED_KEY + at + batched_suffix(batched_at)
        staged = os.path.join(self.workdir, name.replace("/", "__"))
        pack = _packer() if self.gzip else None
        rows = 0

        def emit(data: bytes) -> None:
            nonlocal rows
            rows += data.count(b"\n")
            empty = data.startswith(b"{}\n") or b"\n{}\n" in data
            data = data.replace(b"}\n", ending)
            if empty:  # a record with no field: no comma before the first metadata field
                data = data.replace(b"{" + EXTRACTED_KEY, b'{"_sdc_extracted_at":')
            dst.write(pack.compress(data) if pack else data)

        try:
            with open(path, "rb") as src, open(staged, "wb") as dst:
                first = src.read(_CHUNK)
                gzipped = compression == "gzip" or first[:2] == b"\x1f\x8b"
                unpack = isal_zlib.decompressobj(47) if gzipped else None  # gzip or zlib header
                carry = b""
                chunk = first
                while chunk:
                    data = carry + (unpack.decompress(chunk) if unpack else chunk)
                    cut = data.rfind(b"\n") + 1
                    carry = data[cut:]
                    emit(data[:cut])
                    chunk = src.read(_CHUNK)
                last = carry + (unpack.flush() if unpack else b"")
                if last:
                    emit(last if last.endswith(b"\n") else last + b"\n")
                if pack:
                    dst.write(pack.flush())
            self._upload(staged, name)
        finally:
            if os.path.exists(staged):
                os.unlink(staged)
        return Staged(f"gs://{self.bucket.name}/{name}", rows, source=path)

    def _upload(self, path: str, name: str) -> None:
        testpause.hold("before_upload", "upload", next(_UPLOADS), _LOG)
        blob = self.bucket.blob(name)
        blob.upload_from_filename(path, content_type=self._content_type, retry=_UPLOAD_RETRY)

    @property
    def _content_type(self) -> str:
        return "application/gzip" if self.gzip else "application/x-ndjson"


def local_path(uri: str) -> str:
    """The local path of a BATCH manifest entry (file:// URI or plain path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else uri
    raise ValueError(
        f"BATCH file {uri!r}: only local files (file://) are supported; set the tap's"
        " batch_config.storage.root to a local folder the loader can read"
        f" (the loader uploads the files to its {setting_ref('bucket')})"
    )


def _packer() -> Any:
    """A gzip compressor at ISA-L's level 1: ~5x smaller JSONL at ~1.3 µs of CPU per row."""
    return isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)


def _gzip_file(source: str, target: str) -> None:
    """gzip `source` into `target` (see _packer)."""
    packer = _packer()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(packer.compress(chunk))
        dst.write(packer.flush())
